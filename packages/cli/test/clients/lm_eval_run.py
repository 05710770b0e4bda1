"""Runs lm-eval's `local-completions` (default settings: remote tokenizer, tokenized requests) against `yuan serve`
on two small local tasks, one log-likelihood (multiple choice) and one generate_until, then `local-chat-completions`
on the generate_until one, and the log-likelihood task again with `--batch_size 2`; prints the results as JSON.

Usage: python lm_eval_run.py BASE_URL MODEL_NAME WORK_DIR
"""
import json
import os
import sys

import lm_eval
from lm_eval.tasks import TaskManager

base, name, work = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(work, exist_ok=True)
data = os.path.join(work, "data.jsonl")
with open(data, "w") as f:
    for q, a, wrong in [("2+2=", "4", "5"), ("The sky is", " blue", " green"), ("ab", "c", "z"), ("Hi", "!", "?")]:
        f.write(json.dumps({"question": q, "choices": [a, wrong], "label": 0}) + "\n")
common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
with open(os.path.join(work, "yuan_mc.yaml"), "w") as f:
    f.write("task: yuan_mc\n" + common + "output_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
            "doc_to_choice: '{{choices}}'\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n")
with open(os.path.join(work, "yuan_gen.yaml"), "w") as f:
    f.write("task: yuan_gen\n" + common + "output_type: generate_until\ndoc_to_text: '{{question}}'\n"
            "doc_to_target: '{{choices[0]}}'\ngeneration_kwargs:\n  until: ['\\n']\n  max_gen_toks: 8\n"
            "metric_list:\n  - metric: exact_match\n")
out = lm_eval.simple_evaluate(
    model="local-completions",
    model_args=f"base_url={base}/v1/completions,model={name}",
    tasks=["yuan_mc", "yuan_gen"],
    task_manager=TaskManager(include_path=work, include_defaults=False),
    log_samples=True,
)
res = out["results"]
lls = [s["resps"] for s in out["samples"]["yuan_mc"]]
# --batch_size 2: several prompts (arrays of token ids) per request must score the same
two = lm_eval.simple_evaluate(
    model="local-completions",
    model_args=f"base_url={base}/v1/completions,model={name}",
    tasks=["yuan_mc"],
    task_manager=TaskManager(include_path=work, include_defaults=False),
    batch_size=2,
    log_samples=True,
)
lls2 = [s["resps"] for s in two["samples"]["yuan_mc"]]
# local-chat-completions: generate_until through /v1/chat/completions (chat requests are sent one at a time)
chat = lm_eval.simple_evaluate(
    model="local-chat-completions",
    model_args=f"base_url={base}/v1/chat/completions,model={name}",
    tasks=["yuan_gen"],
    task_manager=TaskManager(include_path=work, include_defaults=False),
    apply_chat_template=True,
    log_samples=True,
)
chat_resps = [s["resps"] for s in chat["samples"]["yuan_gen"]]
print(json.dumps({"mc_acc": res["yuan_mc"]["acc,none"], "gen_em": res["yuan_gen"]["exact_match,none"],
                  "chat_em": chat["results"]["yuan_gen"]["exact_match,none"], "chat_resps": chat_resps, "loglikelihoods": lls,
                  "loglikelihoods_batch2": lls2}))
