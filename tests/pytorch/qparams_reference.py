#!/usr/bin/env python3
"""PyTorch (torch.ao.quantization, 1.13) qparams for every combination of
dtype, scheme, reduce_range, narrow range and custom quant range that sparq's
QuantSpec can express, on a few ranges.

  qparams_reference.py --cpp          prints the table of
                                      tests/unit/qparams_pytorch_test.cpp
  qparams_reference.py --check FILE   regenerates the table with the
                                      installed torch and compares it with
                                      the one in FILE (the ctest
                                      qparams_pytorch_table); exits 77
                                      (ctest's SKIP_RETURN_CODE) without torch

narrow_range has no PyTorch flag: its PyTorch equivalent is the custom range
[-127, 127] (s8); u8's narrow [1, 255] has none (PyTorch refuses ranges
without 0), so those rows are left out here and tested by hand in
qparams_test.cpp.
"""
import os
import re
import sys
import warnings


def import_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        # Debian's python3-torch installs for /usr/bin/python3; another
        # python3 first on PATH (pyenv) does not see it.
        debian = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.path.exists(debian):
            os.execv(debian, [debian] + sys.argv)
        return False


SKIP_NO_TORCH = "SKIP: python3-torch is not installed (Debian: apt-get install python3-torch)"


def committed_table(path, name):
    """The stripped non-empty lines between "// BEGIN <name>" and
    "// END <name>" in the C++ test file at path: the table a --check
    compares with what the installed torch computes now."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"// BEGIN %s\n(.*?)\n *// END %s" % (name, name), text, re.S)
    return [line.strip() for line in m.group(1).splitlines() if line.strip()]


CUSTOM = [None, (0, 15), (-8, 7), (1, 255), (-127, 127), (0, 255), (-128, 127), (0, 1), (5, 20)]
RANGES = [(-1.0, 3.0), (0.5, 2.0), (-4.0, -1.0), (0.0, 0.0), (-2.5, 252.5), (-0.3, 0.7)]


def rows():
    import torch
    from torch.ao.quantization.observer import MinMaxObserver
    warnings.filterwarnings("ignore")
    out = []
    for dt, dname in [(torch.quint8, "u8"), (torch.qint8, "s8")]:
        for qs, sname in [(torch.per_tensor_affine, "asymmetric"), (torch.per_tensor_symmetric, "symmetric")]:
            for rr in (False, True):
                for narrow in (False, True):
                    for custom in CUSTOM:
                        if narrow and dname == "u8":
                            continue
                        for lo, hi in RANGES:
                            qmin, qmax = custom if custom else (None, None)
                            if narrow:
                                if custom:
                                    # sparq refuses narrow + custom (which wins?); no PyTorch run.
                                    out.append((dname, sname, rr, narrow, custom, lo, hi, "error"))
                                    continue
                                qmin, qmax = -127, 127
                            try:
                                o = MinMaxObserver(dtype=dt, qscheme=qs, reduce_range=rr,
                                                   quant_min=qmin, quant_max=qmax)
                                o(torch.tensor([lo, hi]))
                                s, z = o.calculate_qparams()
                                s, z = float(s), int(z)
                                if not (s < float("inf")):
                                    res = "error"  # reduce_range halved the range to one value
                                else:
                                    res = (o.quant_min, o.quant_max, s, z)
                            except (AssertionError, NotImplementedError):
                                res = "error"
                            out.append((dname, sname, rr, narrow, custom, lo, hi, res))
    return out


def storage_ok(dname, custom):
    lo, hi = (0, 255) if dname == "u8" else (-128, 127)
    return custom is None or (lo <= custom[0] and custom[1] <= hi)


def cpp_lines(table):
    lines = []
    for dname, sname, rr, narrow, custom, lo, hi, res in table:
        c = "std::nullopt" if custom is None else "std::pair{%d, %d}" % custom
        head = "{DType::%s, Scheme::%s, %s, %s, %s, %sf, %sf, " % (
            dname, sname, str(rr).lower(), str(narrow).lower(), c, repr(lo), repr(hi))
        if res == "error":
            lines.append(head + "Expect::pytorch_error, 0, 0, 0.0f, 0},")
        elif not storage_ok(dname, custom):
            # PyTorch accepts a custom range outside the storage type (an
            # observer of quint8 with [-128, 127]); sparq refuses it.
            lines.append(head + "Expect::outside_storage, %d, %d, %sf, %d}," % (
                res[0], res[1], float.hex(res[2]), res[3]))
        else:
            lines.append(head + "Expect::same, %d, %d, %sf, %d}," % (
                res[0], res[1], float.hex(res[2]), res[3]))
    return lines


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--cpp":
        import_torch()
        print("\n".join(cpp_lines(rows())))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        if not import_torch():
            print(SKIP_NO_TORCH)
            return 77
        committed = committed_table(sys.argv[2], "PYTORCH TABLE")
        fresh = cpp_lines(rows())
        if committed != fresh:
            for a, b in zip(committed, fresh):
                if a != b:
                    print("committed:", a)
                    print("torch now:", b)
            print("FAIL: the table differs from this torch (%d vs %d rows)" % (len(committed), len(fresh)))
            return 1
        print("OK: %d rows match torch %s" % (len(fresh), __import__("torch").__version__))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
