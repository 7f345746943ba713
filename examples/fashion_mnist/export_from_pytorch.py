#!/usr/bin/env python3
"""Export a PyTorch model's weights to a safetensors file that sparq loads.

sparq::nn::load_weights(model, "model.safetensors") sets every parameter of a
sparq::nn::Sequential by its state_dict name ("0.weight", "1.running_mean",
...), so a PyTorch nn.Sequential with the same layers maps one to one. Two
layouts differ and are converted here:

  * Conv2d weights: PyTorch stores [out][in][kh][kw] (OIHW); sparq runs NHWC
    and stores [out][kh][kw][in] (OHWI).
  * A Linear after Flatten: PyTorch flattens NCHW maps in (C, H, W) order,
    sparq flattens NHWC maps in (H, W, C) order, so that Linear's input
    columns are reordered. Name it in `flatten_chw` with the (C, H, W) shape
    of the map that was flattened.

Only torch (and the numpy it depends on) is needed: the safetensors format
is simple enough to write directly (8-byte little-endian header length, a
JSON header, then the raw little-endian data).

Usage as a library:
    from export_from_pytorch import export_state_dict
    export_state_dict(model.state_dict(), "model.safetensors",
                      flatten_chw={"9.weight": (16, 7, 7)})
"""
import json
import struct

import torch


def to_sparq_layout(state_dict, flatten_chw=None):
    """Returns {name: float32 CPU tensor} in sparq's layouts."""
    flatten_chw = flatten_chw or {}
    out = {}
    for name, t in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue  # a counter, not a parameter (sparq ignores it anyway)
        t = t.detach().to(torch.float32).cpu()
        if t.dim() == 4:
            t = t.permute(0, 2, 3, 1)  # OIHW -> OHWI
        if name in flatten_chw:
            c, h, w = flatten_chw[name]
            t = t.reshape(t.shape[0], c, h, w).permute(0, 2, 3, 1).reshape(t.shape[0], -1)
        out[name] = t.contiguous()
    return out


def save_safetensors(tensors, path, metadata=None):
    """Writes {name: float32 tensor} as a safetensors file."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    """Reads a float32 safetensors file (as save_safetensors writes it) into
    {name: tensor}; metadata is skipped."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {entry['dtype']}; expected F32")
        begin, end = entry["data_offsets"]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32)
        out[name] = flat.reshape(entry["shape"])
    return out


def export_state_dict(state_dict, path, flatten_chw=None, metadata=None):
    save_safetensors(to_sparq_layout(state_dict, flatten_chw), path, metadata)


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 3:
        sys.exit("usage: export_from_pytorch.py MODEL.pt OUT.safetensors  "
                 "(MODEL.pt: a torch.save()d state_dict)")
    export_state_dict(torch.load(sys.argv[1], map_location="cpu"), sys.argv[2])
