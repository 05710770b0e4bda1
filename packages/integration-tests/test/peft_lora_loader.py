"""Puts a PEFT LoRA adapter on a Hugging Face YUAN 2.0 folder loaded with from_pretrained and writes the logits as JSON.

Used by peft-lora.test.ts to check that the adapters `yuan train --lora` saves load with Hugging Face `peft`
(`PeftModel.from_pretrained`, its real key mapping and LoRA layers) and give `yuan forward --peft`'s logits, and that
PEFT's own merge (`merge_and_unload`) gives them too. The base model classes are those of hf_yuan_loader.py beside this
file: `yuan` (our PyTorch YUAN 2.0 as a transformers PreTrainedModel) and `official` (the `YuanForCausalLM` of YUAN's
yuan_hf_model.py, given with --official).

Usage: python peft_lora_loader.py --model BASE --adapter DIR[,DIR...] --input IN.json --output OUT.json
       [--variants yuan,official] [--official PATH]
IN.json is {"input_ids": [[...], ...]}; OUT.json is {"peft": version, "transformers": version, "adapters": {DIR:
{"variants": {name: {"logits": [B][T][V] with the adapter, "merged": [B][T][V] after merge_and_unload, "lora_modules": [names PEFT wrapped],
"missing": [adapter keys the model has but the file lacks], "unexpected": [file keys the model has no place for],
"max_weight_diff": largest |loaded - file| over the adapter's tensors}}}}}; a failure of the official file is that
variant's {"error": "..."}. Other errors go to stderr with a non-zero exit.
"""

import argparse
import json
import os
import sys

import peft
import torch
import transformers
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_yuan_loader  # noqa: E402  (beside this file)


class PeftReadyYuan(hf_yuan_loader.YuanForCausalLM):
    """hf_yuan_loader's YUAN with the hook PEFT's causal-LM wrapper keeps a reference to (nothing here generates)."""

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids, **kwargs}


def run(cls, base, adapter, ids):
    model = cls.from_pretrained(base, dtype=torch.float32)
    model.eval()
    wrapped = PeftModel.from_pretrained(model, adapter)
    wrapped.eval()
    saved = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    loaded = get_peft_model_state_dict(wrapped)
    common = sorted(set(saved) & set(loaded))
    diff = max((float((loaded[k].float() - saved[k].float()).abs().max()) for k in common), default=0.0)
    lora_modules = sorted(n for n, m in wrapped.named_modules() if hasattr(m, "lora_A") and len(getattr(m, "lora_A")) > 0)
    with torch.no_grad():
        logits = wrapped(input_ids=ids, use_cache=False).logits
        merged = wrapped.merge_and_unload()
        merged_logits = merged(ids, use_cache=False).logits
    return {
        "logits": logits.tolist(),
        "merged": merged_logits.tolist(),
        "lora_modules": lora_modules,
        "missing": sorted(set(loaded) - set(saved)),
        "unexpected": sorted(set(saved) - set(loaded)),
        "max_weight_diff": diff,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--variants", default="yuan")
    parser.add_argument("--official")
    args = parser.parse_args()
    hf_yuan_loader.check_layout(args.model)
    with open(args.input, encoding="utf-8") as f:
        ids = torch.tensor(json.load(f)["input_ids"], dtype=torch.long)
    out = {"peft": peft.__version__, "transformers": transformers.__version__, "adapters": {}}
    official = None
    for adapter in args.adapter.split(","):
        variants = out["adapters"].setdefault(adapter, {"variants": {}})["variants"]
        for name in args.variants.split(","):
            if name == "official":
                if not args.official:
                    sys.exit("--variants official needs --official PATH (a copy of YUAN's yuan_hf_model.py)")
                try:  # a file we did not write: its failure is reported for this variant, the others still run
                    official = official or hf_yuan_loader.official_class(args.official)
                    variants[name] = run(official, args.model, adapter, ids)
                except Exception as e:  # noqa: BLE001
                    variants[name] = {"error": f"{type(e).__name__}: {e}"}
            elif name == "yuan":
                variants[name] = run(PeftReadyYuan, args.model, adapter, ids)
            else:
                sys.exit(f"unknown variant {name!r}; expected yuan or official")
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
