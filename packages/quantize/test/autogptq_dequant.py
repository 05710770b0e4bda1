"""Dequantizes every linear of a Hugging Face GPTQ checkpoint folder with the AutoGPTQ v1 convention, in plain Python
(standard library only), as an independent reader of what `yuan quantize` writes.

Convention (AutoGPTQ's QuantLinear): pack = 32 // bits values per int32, value k in bits [k*bits, (k+1)*bits);
qweight [in // pack, out] packs along the input dimension, qzeros [groups, out // pack] along the output dimension
and stores zero - 1 ("gptq" checkpoint format; "gptq_v2" stores the zero itself); scales [groups, out] F16;
g_idx [in] the group of each input column; w[o][i] = scales[g][o] * (q[o][i] - zero[g][o]), g = g_idx[i].

Usage: python3 autogptq_dequant.py FOLDER  ->  JSON on stdout: {"<base>": {"shape": [out, in], "values": [...]}}
"""
import array
import json
import os
import struct
import sys


def main(folder):
    with open(os.path.join(folder, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    bits = qc["bits"]
    offset = 0 if qc.get("checkpoint_format", "gptq") == "gptq_v2" else 1
    pack = 32 // bits
    mask = (1 << bits) - 1
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    start = 8 + n

    def tensor(name):
        entry = header[name]
        begin, end = entry["data_offsets"]
        raw = data[start + begin : start + end]
        if entry["dtype"] == "I32":
            values = array.array("i")
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
            return list(values), entry["shape"]
        if entry["dtype"] == "F16":
            return [v for (v,) in struct.iter_unpack("<e", raw)], entry["shape"]
        raise SystemExit(f"{name}: unexpected dtype {entry['dtype']}")

    out = {}
    for name in sorted(header):
        if not name.endswith(".qweight"):
            continue
        base = name[: -len(".qweight")]
        qweight, (words, rows) = tensor(name)
        qzeros, (groups, zero_words) = tensor(base + ".qzeros")
        scales, scale_shape = tensor(base + ".scales")
        g_idx, _ = tensor(base + ".g_idx")
        assert scale_shape == [groups, rows] and zero_words == rows // pack, base
        cols = words * pack
        values = [0.0] * (rows * cols)
        for i in range(cols):
            g = g_idx[i]
            word_row = (i // pack) * rows
            shift = bits * (i % pack)
            for o in range(rows):
                q = (qweight[word_row + o] >> shift) & mask
                zero = ((qzeros[g * zero_words + o // pack] >> (bits * (o % pack))) & mask) + offset
                values[o * cols + i] = scales[g * rows + o] * (q - zero)
        out[base] = {"shape": [rows, cols], "values": values}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
