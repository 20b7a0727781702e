"""A reference Glow in PyTorch, written from Kingma & Dhariwal (2018) and
flowgrad's own definitions (flows/flow.h): the same layers, the same state
names, the same direction convention. It computes in float64 so that it can
judge flowgrad's float32 numbers.

A model is a list of layer specs, the expanded form of a YAML config:
  {"kind": "squeeze"}
  {"kind": "actnorm"}
  {"kind": "invconv", "lu": bool}
  {"kind": "permute", "type": "reverse" | "shuffle"}
  {"kind": "coupling", "type": "affine" | "additive", "hidden": int}
  {"kind": "split"}
plus the top prior (learn_top, classes for y-conditioning; a y-conditioned
model also has the class head "project_class.*" of its training loss). Layer i names
its state "flow.<i>.<kind>.<name>"; the prior "prior.learn_top.*" and
"prior.project_y.*".

Forward maps data x to latents and adds log|det dz/dx| per sample; inverse
maps latents back."""
import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)
DTYPE = torch.float64


def glow_layers(levels, steps, hidden, coupling, permutation, lu):
    """The glow preset: per level squeeze, K x [actnorm, invconv | permute,
    coupling], then split except after the last level."""
    mix = ({"kind": "invconv", "lu": lu} if permutation == "invconv"
           else {"kind": "permute", "type": permutation})
    out = []
    for level in range(levels):
        out.append({"kind": "squeeze"})
        for _ in range(steps):
            out += [{"kind": "actnorm"}, dict(mix),
                    {"kind": "coupling", "type": coupling, "hidden": hidden}]
        if level + 1 < levels:
            out.append({"kind": "split"})
    return out


# ------------------------------------------------------------------ shapes

def state_shapes(layers, chw, learn_top, classes):
    """[(name, shape, is_param)] in the order flowgrad's visitor lists them,
    and the shape reaching the top prior."""
    c, h, w = chw
    out = []

    def actnorm(prefix, ch):
        out.extend([(prefix + ".bias", (ch,), True), (prefix + ".logs", (ch,), True),
                    (prefix + ".initialized", (1,), False)])

    def zero_conv(prefix, ci, co):
        out.extend([(prefix + ".weight", (co, ci, 3, 3), True),
                    (prefix + ".bias", (co,), True), (prefix + ".logs", (co,), True)])

    for i, spec in enumerate(layers):
        k = spec["kind"]
        p = "flow.%d.%s" % (i, k)
        if k == "squeeze":
            c, h, w = 4 * c, h // 2, w // 2
        elif k == "actnorm":
            actnorm(p, c)
        elif k == "invconv":
            if spec["lu"]:
                out.extend([(p + ".p", (c,), False), (p + ".sign", (c,), False),
                            (p + ".l", (c, c), True), (p + ".u", (c, c), True),
                            (p + ".log_s", (c,), True)])
            else:
                out.append((p + ".weight", (c, c), True))
        elif k == "permute":
            if spec["type"] == "shuffle":
                out.append((p + ".perm", (c,), False))
        elif k == "coupling":
            half, hid = c // 2, spec["hidden"]
            out.append((p + ".nn.0.weight", (hid, half, 3, 3), True))
            actnorm(p + ".nn.1", hid)
            out.append((p + ".nn.3.weight", (hid, hid, 1, 1), True))
            actnorm(p + ".nn.4", hid)
            zero_conv(p + ".nn.6", hid, 2 * half if spec["type"] == "affine" else half)
        elif k == "split":
            zero_conv(p + ".conv", c // 2, 2 * (c - c // 2))
            c = c // 2
        else:
            raise ValueError("unknown layer kind %r" % k)
    if learn_top:
        zero_conv("prior.learn_top", 2 * c, 2 * c)
    if classes:
        out.extend([("prior.project_y.weight", (2 * c, classes), True),
                    ("prior.project_y.bias", (2 * c,), True),
                    ("project_class.weight", (classes, c), True),
                    ("project_class.bias", (classes,), True)])
    return out, (c, h, w)


# ------------------------------------------------------------------ layers

def _per_channel(v):
    return v.view(1, -1, 1, 1)


def actnorm_fwd(s, p, x):
    return (x + _per_channel(s[p + ".bias"])) * _per_channel(torch.exp(s[p + ".logs"]))


def actnorm_inv(s, p, z):
    return z * _per_channel(torch.exp(-s[p + ".logs"])) - _per_channel(s[p + ".bias"])


def zero_conv(s, p, x):
    y = F.conv2d(x, s[p + ".weight"], s[p + ".bias"], padding=1)
    return y * _per_channel(torch.exp(3.0 * s[p + ".logs"]))


def invconv_weight(s, p, lu):
    if not lu:
        return s[p + ".weight"]
    c = s[p + ".l"].shape[0]
    ones = torch.ones(c, c, dtype=DTYPE)
    eye = torch.eye(c, dtype=DTYPE)
    lower = s[p + ".l"] * torch.tril(ones, -1) + eye
    upper = s[p + ".u"] * torch.triu(ones, 1) + torch.diag(s[p + ".sign"] * torch.exp(s[p + ".log_s"]))
    perm = s[p + ".p"].long()
    pm = torch.zeros(c, c, dtype=DTYPE)
    pm[torch.arange(c), perm] = 1.0          # row r of W is row perm[r] of L U
    return pm @ lower @ upper


def invconv_logdet(s, p, lu, w):
    if lu:
        return s[p + ".log_s"].sum()
    return torch.linalg.slogdet(w)[1]


def squeeze(x):
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(z):
    n, c, h, w = z.shape
    z = z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return z.reshape(n, c // 4, 2 * h, 2 * w)


def perm_of(s, p, spec, c):
    if spec["type"] == "reverse":
        return torch.arange(c - 1, -1, -1)
    return s[p + ".perm"].long()


def coupling_nn(s, p, x1):
    h = F.conv2d(x1, s[p + ".nn.0.weight"], padding=1)
    h = F.relu(actnorm_fwd(s, p + ".nn.1", h))
    h = F.conv2d(h, s[p + ".nn.3.weight"])
    h = F.relu(actnorm_fwd(s, p + ".nn.4", h))
    return zero_conv(s, p + ".nn.6", h)


def gaussian_logp(z, mean, logs):
    return (-0.5 * (LOG_2PI + 2.0 * logs + (z - mean) ** 2 * torch.exp(-2.0 * logs))).flatten(1).sum(1)


def split_params(s, p, z1):
    h = zero_conv(s, p + ".conv", z1)
    return h[:, 0::2], h[:, 1::2]


# ------------------------------------------------------------------ model

class Glow:
    def __init__(self, layers, chw, learn_top, classes, n_bits):
        self.layers = layers
        self.chw = tuple(chw)
        self.learn_top = learn_top
        self.classes = classes
        self.n_bits = n_bits
        self.shapes, self.top = state_shapes(layers, chw, learn_top, classes)
        self.state = {}

    def param_names(self):
        return [n for n, _, is_param in self.shapes if is_param]

    def prior_params(self, n, y):
        c, h, w = self.top
        hh = torch.zeros(n, 2 * c, h, w, dtype=DTYPE)
        if self.learn_top:
            hh = zero_conv(self.state, "prior.learn_top", hh)
        if self.classes:
            onehot = F.one_hot(y.long(), self.classes).to(DTYPE)
            shift = onehot @ self.state["prior.project_y.weight"].t() + self.state["prior.project_y.bias"]
            hh = hh + shift.view(n, 2 * c, 1, 1)
        return hh[:, :c], hh[:, c:]

    def encode(self, x, y=None):
        """Latents in forward order (split-offs, then the top) and log p(x)
        per sample."""
        s = self.state
        n = x.shape[0]
        logdet = torch.zeros(n, dtype=DTYPE)
        logp = torch.zeros(n, dtype=DTYPE)
        latents = []
        for i, spec in enumerate(self.layers):
            k = spec["kind"]
            p = "flow.%d.%s" % (i, k)
            hw = x.shape[2] * x.shape[3]
            if k == "squeeze":
                x = squeeze(x)
            elif k == "actnorm":
                x = actnorm_fwd(s, p, x)
                logdet = logdet + hw * s[p + ".logs"].sum()
            elif k == "invconv":
                w = invconv_weight(s, p, spec["lu"])
                c = w.shape[0]
                x = F.conv2d(x, w.view(c, c, 1, 1))
                logdet = logdet + hw * invconv_logdet(s, p, spec["lu"], w)
            elif k == "permute":
                x = x[:, perm_of(s, p, spec, x.shape[1])]
            elif k == "coupling":
                half = x.shape[1] // 2
                x1, x2 = x[:, :half], x[:, half:]
                h = coupling_nn(s, p, x1)
                if spec["type"] == "additive":
                    z2 = x2 + h
                else:
                    logscale = F.logsigmoid(h[:, 1::2] + 2.0)
                    z2 = (x2 + h[:, 0::2]) * torch.exp(logscale)
                    logdet = logdet + logscale.flatten(1).sum(1)
                x = torch.cat([x1, z2], 1)
            elif k == "split":
                half = x.shape[1] // 2
                z1, z2 = x[:, :half], x[:, half:]
                mean, logs = split_params(s, p, z1)
                logp = logp + gaussian_logp(z2, mean, logs)
                latents.append(z2)
                x = z1
        mean, logs = self.prior_params(n, y)
        logp = logp + gaussian_logp(x, mean, logs) + logdet
        self.last_logdet = logdet
        latents.append(x)
        return latents, logp

    def decode(self, latents):
        s = self.state
        latents = list(latents)
        x = latents.pop()
        for i in range(len(self.layers) - 1, -1, -1):
            spec = self.layers[i]
            k = spec["kind"]
            p = "flow.%d.%s" % (i, k)
            if k == "squeeze":
                x = unsqueeze(x)
            elif k == "actnorm":
                x = actnorm_inv(s, p, x)
            elif k == "invconv":
                w = torch.inverse(invconv_weight(s, p, spec["lu"]))
                c = w.shape[0]
                x = F.conv2d(x, w.view(c, c, 1, 1))
            elif k == "permute":
                perm = perm_of(s, p, spec, x.shape[1])
                x = x[:, torch.argsort(perm)]
            elif k == "coupling":
                half = x.shape[1] // 2
                z1, z2 = x[:, :half], x[:, half:]
                h = coupling_nn(s, p, z1)
                if spec["type"] == "additive":
                    x2 = z2 - h
                else:
                    logscale = F.logsigmoid(h[:, 1::2] + 2.0)
                    x2 = z2 * torch.exp(-logscale) - h[:, 0::2]
                x = torch.cat([z1, x2], 1)
            elif k == "split":
                x = torch.cat([x, latents.pop()], 1)
        assert not latents, "latents left over"
        return x

    def dequantize(self, images, noise):
        """flowgrad's dequantization, rounded to float32 as flowgrad holds it:
        floor(x / 2^(8 - n_bits)) / 2^n_bits - 0.5 + u / 2^n_bits."""
        bins = 2.0 ** self.n_bits
        x = torch.floor(images.to(DTYPE) / 2.0 ** (8 - self.n_bits)) / bins - 0.5 + noise.to(DTYPE) / bins
        return x.float().to(DTYPE)

    def class_loss(self, top, y):
        """Glow's auxiliary classifier: a linear map of the top latent's
        per-channel means, mean cross-entropy over the batch."""
        logits = top.mean((2, 3)) @ self.state["project_class.weight"].t() + self.state["project_class.bias"]
        return F.cross_entropy(logits, y.long())

    def bits_per_dim(self, logp):
        """Mean over the batch of -(log p(x) - D log 2^n_bits) / (D log 2)."""
        d = self.chw[0] * self.chw[1] * self.chw[2]
        return (-(logp - d * self.n_bits * math.log(2.0)) / (d * math.log(2.0))).mean()
