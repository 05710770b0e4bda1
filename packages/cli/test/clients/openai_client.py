"""Drives `yuan serve` with the official `openai` Python client; exits non-zero on the first wrong answer.

Usage: python openai_client.py BASE_URL MODEL_NAME
"""
import sys

import openai

base, name = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)

# completions: greedy is deterministic, streamed text equals the returned text
c = client.completions.create(model=name, prompt="Hello", max_tokens=12, temperature=0)
text = c.choices[0].text
assert c.object == "text_completion" and c.choices[0].finish_reason in ("stop", "length"), c
assert c.usage.completion_tokens <= 12 and c.usage.prompt_tokens == 5, c.usage
chunks = list(client.completions.create(model=name, prompt="Hello", max_tokens=12, temperature=0, stream=True,
                                        stream_options={"include_usage": True}))
assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == text, (chunks, text)
assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == c.usage.completion_tokens, chunks[-1]

# n choices with sampling and a seed; several prompts in one request
many = client.completions.create(model=name, prompt=["ab", "abcd"], max_tokens=5, temperature=1.0, n=2, seed=3)
assert sorted(ch.index for ch in many.choices) == [0, 1, 2, 3], many

# stop strings: cut exactly before the first occurrence, streamed or not
long = client.completions.create(model=name, prompt="Hello", max_tokens=30, temperature=0).choices[0].text
if len(long) >= 6:
    stop = long[3:6]
    cut = long[: long.index(stop)]
    s = client.completions.create(model=name, prompt="Hello", max_tokens=30, temperature=0, stop=[stop])
    assert s.choices[0].text == cut and s.choices[0].finish_reason == "stop", (s, cut)
    streamed = client.completions.create(model=name, prompt="Hello", max_tokens=30, temperature=0, stop=stop, stream=True)
    assert "".join(ch.choices[0].text for ch in streamed) == cut

# logprobs with echo (how harnesses score log-likelihoods) and token-id prompts
e = client.completions.create(model=name, prompt=[72, 105, 33], max_tokens=1, temperature=0, logprobs=2, echo=True)
lp = e.choices[0].logprobs
assert lp.token_logprobs[0] is None and len(lp.token_logprobs) == 4 and all(v <= 0 for v in lp.token_logprobs[1:]), lp
assert e.choices[0].text.startswith("Hi!") and len(lp.top_logprobs[1]) == 2, e

# chat, streamed and not, with logprobs
chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0,
                                      logprobs=True, top_logprobs=2)
msg = chat.choices[0].message.content
assert chat.choices[0].logprobs.content is not None and len(chat.choices[0].logprobs.content[0].top_logprobs) == 2, chat
parts = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0, stream=True)
assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == msg

# errors: content problems are 400 with the parameter named, streaming or not; unknown models are 404
for kwargs in ({"prompt": "x" * 400, "max_tokens": 4}, {"prompt": "x" * 400, "max_tokens": 4, "stream": True}):
    try:
        r = client.completions.create(model=name, **kwargs)
        if kwargs.get("stream"):
            list(r)
        raise AssertionError("a prompt past the context was accepted")
    except openai.BadRequestError as err:
        assert err.status_code == 400 and err.body["param"] == "prompt", err.body
try:
    client.completions.create(model="other", prompt="a", max_tokens=1)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError:
    pass
print("openai client: ok")
