#!/usr/bin/python3
"""Writes the cross-framework fixtures tests/fixtures/*.safetensors from the
reference Glow in glow.py, and checks safetensors interop with flowgrad.

    /usr/bin/python3 tests/reference/make_fixtures.py            # all fixtures
    /usr/bin/python3 tests/reference/make_fixtures.py --check    # regenerate in
        memory and compare byte for byte with the committed files
    /usr/bin/python3 tests/reference/make_fixtures.py --roundtrip CKPT OUT
        reads a flowgrad checkpoint (e.g. run/checkpoint.safetensors from
        `flowgrad train`), turns every tensor into a torch tensor, writes them
        back to OUT and requires OUT to equal CKPT byte for byte; with
        --model FIXTURE it also loads the checkpoint's model tensors into the
        reference Glow built from FIXTURE's config and prints log p(x) of
        FIXTURE's inputs under the checkpoint's weights. For example, train
        three steps of the first fixture's config on synthetic data:
            cfg=$(/usr/bin/python3 -c 'import sys; sys.path.insert(0, "tests/reference");
                import safetensors_io as s;
                print(dict(s.read("tests/fixtures/glow-affine-lu.safetensors")[1])["config"])')
            printf '%s\ntrain: {dataset: {name: synthetic}, batch: 4, steps: 3}\n' "$cfg" > /tmp/c.yaml
            BUILD/examples/flowgrad train /tmp/c.yaml --out /tmp/run
            /usr/bin/python3 tests/reference/make_fixtures.py --roundtrip \
                /tmp/run/checkpoint.safetensors /tmp/back.safetensors \
                --model tests/fixtures/glow-affine-lu.safetensors

Needs PyTorch (Debian's python3-torch); the C test needs no Python. Each
fixture holds, for one small config (its YAML text in the metadata under
"config"):
  every parameter and buffer under flowgrad's names, moved away from the
    identity initialization (actnorm "initialized" flags are 1);
  input.images (N, C, H, W) integer pixel values 0..255 as F32,
  input.noise (N, C, H, W) the dequantization noise u in [0, 1),
  input.labels (N) I32 when the config is y-conditioned;
  expect.log_likelihood (N): log p(x) in nats of the dequantized x,
  expect.bits_per_dim (1): the mean bits/dim, the training loss;
  expect.loss (1), y-conditioned only: bits/dim + weight_y * the class
    head's mean cross-entropy (the class head's gradient from bits/dim is 0);
  grad.<param> for every parameter: d bits_per_dim / d param;
  decode.z.<i> fixed latents in forward order (split-offs, then the top):
    the inputs' latents plus N(0, 0.1^2) noise, and decode.x their decode.
Everything is computed in float64 from float32-representable inputs and
stored as float32. Runs single-threaded from fixed seeds, so the files
regenerate bit for bit."""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import glow  # noqa: E402
import safetensors_io as st  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
FORMAT = "flowgrad-reference-fixture 1"


def glow_yaml(description, c, h, w, n_bits, learn_top, levels, steps, hidden, coupling,
              permutation, lu):
    text = ("description: %s\nmodel:\n  type: glow\n  height: %d\n  width: %d\n"
            "  channels: %d\n  n_bits: %d\n  learn_top: %s\n  levels: %d\n  steps: %d\n"
            "  hidden: %d\n  coupling: %s\n  permutation: %s\n"
            % (description, h, w, c, n_bits, "true" if learn_top else "false", levels,
               steps, hidden, coupling, permutation))
    if permutation == "invconv":
        text += "  lu: %s\n" % ("true" if lu else "false")
    return text


# Three configs covering the layer options: affine + LU invconv + learned top
# (the Glow default), additive + shuffle without a learned top, and the
# generic layer list with plain invconv + reverse permutation + y-conditioning.
def configs():
    out = []
    out.append({
        "name": "glow-affine-lu", "seed": 1, "batch": 2, "chw": (3, 8, 8), "n_bits": 5,
        "learn_top": True, "classes": 0,
        "layers": glow.glow_layers(2, 2, 8, "affine", "invconv", True),
        "yaml": glow_yaml("reference fixture, glow, affine coupling, LU invconv, learned top",
                          3, 8, 8, 5, True, 2, 2, 8, "affine", "invconv", True),
    })
    out.append({
        "name": "glow-additive-shuffle", "seed": 2, "batch": 3, "chw": (1, 8, 8), "n_bits": 8,
        "learn_top": False, "classes": 0,
        "layers": glow.glow_layers(2, 2, 8, "additive", "shuffle", False),
        "yaml": glow_yaml("reference fixture, glow, additive coupling, shuffle, standard top",
                          1, 8, 8, 8, False, 2, 2, 8, "additive", "shuffle", False),
    })
    step = [{"kind": "actnorm"}, {"kind": "invconv", "lu": False},
            {"kind": "permute", "type": "reverse"},
            {"kind": "coupling", "type": "affine", "hidden": 8}]
    layers = [{"kind": "squeeze"}] + step * 2 + [{"kind": "split"}, {"kind": "squeeze"}] + step * 2
    out.append({
        "name": "flow-plain-reverse-y", "seed": 3, "batch": 4, "chw": (3, 8, 8), "n_bits": 8,
        "learn_top": True, "classes": 4, "weight_y": 0.5, "layers": [dict(l) for l in layers],
        "yaml": ("description: reference fixture, generic list, plain invconv, reverse, "
                 "class-conditional top\nmodel:\n  type: flow\n  height: 8\n  width: 8\n"
                 "  channels: 3\n  n_bits: 8\n  learn_top: true\n  y_condition: true\n"
                 "  classes: 4\n  weight_y: 0.5\n  flow:\n    - squeeze\n    - repeat: 2\n      flow:\n"
                 "        - actnorm\n        - invconv: {lu: false}\n"
                 "        - permute: {type: reverse}\n"
                 "        - coupling: {type: affine, hidden: 8}\n    - split\n"
                 "    - squeeze\n    - repeat: 2\n      flow:\n        - actnorm\n"
                 "        - invconv: {lu: false}\n        - permute: {type: reverse}\n"
                 "        - coupling: {type: affine, hidden: 8}\n"),
    })
    return out


def f32(t):
    """float64 tensor holding float32-representable values."""
    return t.float().to(glow.DTYPE)


def random_state(model, gen):
    """Every parameter and buffer, away from identity: scales chosen so each
    layer changes its input visibly but the flow stays well conditioned."""
    def normal(shape, std):
        return f32(torch.randn(shape, generator=gen, dtype=glow.DTYPE) * std)

    s = {}
    for name, shape, _ in model.shapes:
        leaf = name.rsplit(".", 1)[1]
        c = shape[0]
        if leaf == "initialized":
            v = torch.ones(1, dtype=glow.DTYPE)
        elif leaf == "p" or leaf == "perm":
            v = torch.randperm(c, generator=gen).to(glow.DTYPE)
        elif leaf == "sign":
            v = torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0).to(glow.DTYPE)
        elif leaf in ("l", "u"):
            v = normal(shape, 0.3)   # entries outside the triangle must not matter
        elif name.endswith("invconv.weight"):
            q, _ = torch.linalg.qr(torch.randn(shape, generator=gen, dtype=glow.DTYPE))
            v = f32(q + 0.2 * torch.randn(shape, generator=gen, dtype=glow.DTYPE))
        elif ".nn.0." in name or ".nn.3." in name:
            v = normal(shape, 0.2)
        elif leaf in ("bias", "logs", "log_s"):
            v = normal(shape, 0.1)
        else:                         # zero convs' and project_y's weights
            v = normal(shape, 0.05)
        s[name] = v
    return s


def make_fixture(cfg):
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = glow.Glow(cfg["layers"], cfg["chw"], cfg["learn_top"], cfg["classes"], cfg["n_bits"])
    model.state = random_state(model, gen)
    params = model.param_names()
    for name in params:
        model.state[name].requires_grad_(True)
    n = cfg["batch"]
    c, h, w = cfg["chw"]
    images = torch.randint(0, 256, (n, c, h, w), generator=gen).to(glow.DTYPE)
    noise = f32(torch.rand(n, c, h, w, generator=gen, dtype=glow.DTYPE))
    labels = torch.randint(0, cfg["classes"], (n,), generator=gen) if cfg["classes"] else None

    x = model.dequantize(images, noise)
    latents, logp = model.encode(x, labels)
    loss = model.bits_per_dim(logp)
    grads = torch.autograd.grad(loss, [model.state[p] for p in params], allow_unused=True)
    grads = [torch.zeros_like(model.state[p]) if g is None else g for p, g in zip(params, grads)]

    with torch.no_grad():
        # Near the data's own latents, where random weights keep the
        # inverse well conditioned (far-off latents can blow up through
        # exp(-log scale) of several affine couplings).
        fixed = [f32(z + 0.1 * torch.randn(z.shape, generator=gen, dtype=glow.DTYPE))
                 for z in latents]
        decoded = model.decode(fixed)
        # Self-check: encoding the decode gives the latents back.
        again, _ = model.encode(decoded, labels)
        err = max((a - b).abs().max().item() for a, b in zip(again, fixed))
        assert err < 1e-9, "reference round trip is off by %g" % err
    # Self-check: the analytic log-determinant of sample 0 equals
    # log|det| of the numerical Jacobian of x -> all latents.
    x0 = x[:1].detach()
    lab0 = labels[:1] if labels is not None else None
    frozen = {k: v.detach() for k, v in model.state.items()}
    live, model.state = model.state, frozen

    def flat_latents(v):
        zs, _ = model.encode(v.view(x0.shape), lab0)
        return torch.cat([z.flatten() for z in zs])

    jac = torch.autograd.functional.jacobian(flat_latents, x0.flatten())
    model.encode(x0, lab0)
    jerr = abs(torch.linalg.slogdet(jac)[1].item() - model.last_logdet.item())
    model.state = live
    assert jerr < 1e-8, "analytic log-determinant is off by %g" % jerr

    def a32(t):
        return t.detach().to(torch.float32).numpy()

    tensors = [(name, a32(model.state[name])) for name, _, _ in model.shapes]
    tensors += [("input.images", a32(images)), ("input.noise", a32(noise))]
    if labels is not None:
        tensors.append(("input.labels", labels.to(torch.int32).numpy()))
    tensors += [("expect.log_likelihood", a32(logp)),
                ("expect.bits_per_dim", a32(loss.reshape(1)))]
    if labels is not None:
        with torch.no_grad():
            total = loss + cfg["weight_y"] * model.class_loss(latents[-1], labels)
        tensors.append(("expect.loss", a32(total.reshape(1))))
    tensors += [("grad." + p, a32(g)) for p, g in zip(params, grads)]
    tensors += [("decode.z.%d" % i, a32(z)) for i, z in enumerate(fixed)]
    tensors.append(("decode.x", a32(decoded)))
    meta = [("format", FORMAT), ("config", cfg["yaml"]), ("seed", str(cfg["seed"]))]
    summary = "%s: log p(x) %s, bits/dim %.6f, %d parameters" % (
        cfg["name"], ", ".join("%.4f" % v for v in logp.tolist()), loss.item(), len(params))
    return st.encode(tensors, meta), summary


def roundtrip(ckpt, out, model_fixture):
    with open(ckpt, "rb") as f:
        original = f.read()
    tensors, meta = st.decode(original)
    as_torch = [(name, torch.from_numpy(a)) for name, a in tensors]
    st.write(out, [(name, t.numpy()) for name, t in as_torch], meta)
    with open(out, "rb") as f:
        same = f.read() == original
    print("%s: %d tensors, %d metadata keys; written back to %s: %s" % (
        ckpt, len(tensors), len(meta), out, "identical" if same else "DIFFERENT"))
    if model_fixture:
        ftensors, fmeta = st.read(model_fixture)
        fixture = dict(ftensors)
        cfg = next(c for c in configs() if dict(fmeta)["config"] == c["yaml"])
        model = glow.Glow(cfg["layers"], cfg["chw"], cfg["learn_top"], cfg["classes"],
                          cfg["n_bits"])
        weights = dict(as_torch)
        model.state = {n: weights[n].to(glow.DTYPE) for n, _, _ in model.shapes}
        x = model.dequantize(torch.from_numpy(fixture["input.images"]),
                             torch.from_numpy(fixture["input.noise"]))
        labels = torch.from_numpy(fixture["input.labels"]) if "input.labels" in fixture else None
        with torch.no_grad():
            _, logp = model.encode(x, labels)
        print("log p(x) under the checkpoint:", logp.tolist(),
              "bits/dim %.6f" % model.bits_per_dim(logp).item())
    return 0 if same else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--roundtrip", nargs=2, metavar=("CKPT", "OUT"))
    ap.add_argument("--model", metavar="FIXTURE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.roundtrip:
        return roundtrip(args.roundtrip[0], args.roundtrip[1], args.model)
    bad = 0
    for cfg in configs():
        data, summary = make_fixture(cfg)
        path = os.path.join(FIXTURES, cfg["name"] + ".safetensors")
        # The writer's output must read back to the same bytes.
        t, m = st.decode(data)
        assert st.encode(t, m) == data
        if args.check:
            with open(path, "rb") as f:
                same = f.read() == data
            bad += not same
            print("%s: %s" % (path, "identical" if same else "DIFFERS"))
        else:
            with open(path, "wb") as f:
                f.write(data)
            print("%s (%d bytes) %s" % (path, len(data), summary))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
