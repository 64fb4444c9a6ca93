"""The autoregressive Bernoulli likelihood against exact answers: its masses over every binary
image of a tiny shape sum to 1, its log-mass equals a float64 loop over the pixels written
from the definition, its samples follow those masses, and it trains in both architectures."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import vaezoo
import vaezoo.testing
from vaezoo.cli import main
from vaezoo.errors import ComponentParamError, DataError
from vaezoo.likelihoods.autoregressive import AutoregressiveBernoulli
from vaezoo.likelihoods.bernoulli import Bernoulli

D64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")


def randomised(seed=0, **options) -> AutoregressiveBernoulli:
    """A float64 likelihood with all weights random (the output layer is not left at zero)."""
    torch.manual_seed(seed)
    lik = AutoregressiveBernoulli(**options).double()
    with torch.no_grad():
        for p in lik.parameters():
            p.normal_(0.0, 0.8)
    return lik


def all_images(shape) -> torch.Tensor:
    n = math.prod(shape)
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=D64).reshape(-1, *shape)


def reference_log_prob(lik: AutoregressiveBernoulli, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """log p(x) of one (C, H, W) image from the definition, with explicit loops over pixels and
    kernel offsets (no masks): layer 1 sees offsets strictly before the centre in raster order,
    later layers also the centre; the 1x1 output layer gives g (row 0) and g_f (row 1 + f);
    logit = params block 0 + g + sum_f (params block 1 + f) * g_f."""
    c_data, h, w = x.shape
    total = torch.zeros((), dtype=D64)
    for ch in range(c_data):
        feats = (x[ch] * 2 - 1)[None]  # (1, H, W)
        for depth, layer in enumerate(lik.hidden):
            k = layer.kernel_size[0]
            r0 = k // 2
            weight, bias = layer.weight.detach(), layer.bias.detach()
            out = torch.zeros(weight.shape[0], h, w, dtype=D64)
            for i, j in itertools.product(range(h), range(w)):
                acc = bias.clone()
                for di, dj in itertools.product(range(-r0, r0 + 1), repeat=2):
                    before = di < 0 or (di == 0 and (dj < 0 if depth == 0 else dj <= 0))
                    if before and 0 <= i + di < h and 0 <= j + dj < w:
                        acc = acc + weight[:, :, di + r0, dj + r0] @ feats[:, i + di, j + dj]
                out[:, i, j] = acc
            feats = torch.relu(out)
        maps = torch.einsum("oc,chw->ohw", lik.out.weight.detach()[:, :, 0, 0], feats) + lik.out.bias.detach()[:, None, None]
        logits = params[ch] + maps[0]
        for f in range(lik.features):
            logits = logits + params[(1 + f) * c_data + ch] * maps[1 + f]
        total = total + (x[ch] * torch.nn.functional.logsigmoid(logits) + (1 - x[ch]) * torch.nn.functional.logsigmoid(-logits)).sum()
    return total


def param_shape(lik, shape):
    return tuple(lik.param_shape(shape))


@pytest.mark.parametrize("data_shape", [(1, 4, 4), (2, 3, 3), (5,)])
@pytest.mark.parametrize("features", [0, 2])
def test_conformance_kit(data_shape, features):
    vaezoo.testing.check_likelihood("autoregressive_bernoulli", data_shape, kernel_size=3, channels=4, layers=2,
                                    features=features)


@pytest.mark.parametrize("shape,options", [
    ((1, 2, 3), {"kernel_size": 3, "channels": 5, "layers": 2}),
    ((1, 3, 3), {"kernel_size": 5, "channels": 3, "layers": 1}),
    ((2, 2, 2), {"kernel_size": 3, "channels": 4, "layers": 3}),
    ((7,), {"kernel_size": 5, "channels": 4, "layers": 2}),
    ((1, 2, 3), {"kernel_size": 3, "channels": 5, "layers": 2, "features": 2}),
    ((2, 2, 2), {"kernel_size": 3, "channels": 4, "layers": 1, "features": 1}),
    ((6,), {"kernel_size": 3, "channels": 3, "layers": 2, "features": 3}),
])
def test_masses_over_every_binary_image_sum_to_one(shape, options):
    lik = randomised(**options)
    xs = all_images(shape)
    ps = param_shape(lik, shape)
    params = torch.randn(1, *ps, dtype=D64).expand(len(xs), *ps)
    total = torch.logsumexp(lik.log_prob(xs, params), 0)
    assert abs(total.item()) < 1e-12


@pytest.mark.parametrize("features", [0, 2])
def test_log_prob_equals_the_definition_in_float64(features):
    lik = randomised(seed=3, kernel_size=5, channels=3, layers=2, features=features)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (3, 2, 4, 5), generator=g).to(D64)
    params = torch.randn(3, 2 * (1 + features), 4, 5, generator=g, dtype=D64)
    got = lik.log_prob(x, params)
    want = torch.stack([reference_log_prob(lik, x[b], params[b]) for b in range(3)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("features", [0, 2])
def test_pixel_i_depends_only_on_earlier_pixels(features):
    lik = randomised(seed=4, kernel_size=3, channels=4, layers=3, features=features)
    x = torch.randint(0, 2, (1, 1, 4, 4)).to(D64).requires_grad_(True)
    g = lik.context(x, torch.randn(1, features, 4, 4, dtype=D64) if features else None).flatten()
    for i in range(16):
        (grad,) = torch.autograd.grad(g[i], x, retain_graph=True)
        assert (grad.flatten()[i:] == 0).all(), f"the context of pixel {i} depends on pixel {int(grad.flatten()[i:].abs().argmax()) + i} or later"
    assert (torch.autograd.grad(g[5], x)[0].flatten()[:5] != 0).any()  # and it does see some earlier pixels


def test_fresh_likelihood_is_the_factorised_bernoulli():
    x = torch.randint(0, 2, (4, 1, 6, 6)).float()
    params = torch.randn(3, 4, 1, 6, 6)
    torch.testing.assert_close(AutoregressiveBernoulli().log_prob(x, params), Bernoulli().log_prob(x, params))
    with_features = torch.cat([params, torch.randn(3, 4, 2, 6, 6)], dim=-3)  # the logits block, then 2 feature maps
    torch.testing.assert_close(AutoregressiveBernoulli(features=2).log_prob(x, with_features), Bernoulli().log_prob(x, params))


def test_feature_maps_condition_every_pixel_on_z():
    """With features, the context of every pixel (the first too) moves with the decoder's gain maps at that pixel only."""
    lik = randomised(seed=8, kernel_size=3, channels=4, layers=2, features=2)
    x = torch.randint(0, 2, (2, 1, 3, 3)).to(D64)
    f = torch.randn(2, 2, 3, 3, dtype=D64, requires_grad=True)
    g = lik.context(x, f)
    assert g.shape == x.shape
    for i in range(9):
        (grad,) = torch.autograd.grad(g[0].flatten()[i], f, retain_graph=True)
        here = torch.zeros(3, 3, dtype=torch.bool)
        here[i // 3, i % 3] = True
        assert grad[0][:, here].abs().sum() > 0 and (grad[0][:, ~here] == 0).all() and (grad[1] == 0).all(), i


@pytest.mark.parametrize("features", [0, 1])
def test_samples_follow_the_masses(features):
    lik = randomised(seed=5, kernel_size=3, channels=4, layers=2, features=features)
    shape = (1, 2, 3)
    ps = param_shape(lik, shape)
    xs = all_images(shape)
    params = torch.randn(1, *ps, dtype=D64)
    probs = lik.log_prob(xs, params.expand(len(xs), *ps)).exp()
    torch.manual_seed(0)
    n = 40000
    draws = lik.sample(params.expand(n, *ps)).reshape(n, -1)
    index = (draws * 2 ** torch.arange(5, -1, -1, dtype=D64)).sum(1).long()
    counts = torch.bincount(index, minlength=len(xs)).double()
    expected = n * probs
    keep = expected > 5
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum().item()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)
    mean = lik.mean(params.expand(8, *ps))  # conditional means along a draw: probabilities
    assert mean.shape == (8, *shape) and ((mean > 0) & (mean < 1)).all()


@pytest.mark.parametrize("shape", [(2, 6, 7), (9,)])
@pytest.mark.parametrize("features", [0, 2])
def test_sampling_windows_give_the_exact_conditionals_of_the_draw(shape, features):
    """Sampling runs the context net on each pixel's window only; the conditional means it
    reports along a draw are those of the whole-image pass on the drawn image (images wider
    and taller than the window, channels, vectors, two leading dims)."""
    lik = randomised(seed=11, kernel_size=3, channels=3, layers=2, features=features)  # reach 2: windows of 5x5
    params = torch.randn(2, 3, *param_shape(lik, shape), dtype=D64)
    torch.manual_seed(0)
    x, probs = lik._draw(params, len(shape))
    assert x.shape == probs.shape == (2, 3, *shape) and set(x.unique().tolist()) <= {0.0, 1.0}
    flat_x, flat_p = x.reshape(6, *shape), params.reshape(6, *params.shape[2:])
    logits, gains = lik._blocks(flat_p, len(shape))
    want = torch.sigmoid(logits + lik.context(flat_x, gains))
    torch.testing.assert_close(probs.reshape(6, *shape), want, rtol=1e-12, atol=1e-12)
    torch.manual_seed(0)
    assert torch.equal(lik.sample(params, len(shape)), x)


@pytest.mark.parametrize("features", [0, 2])
def test_context_is_computed_once_for_all_latent_samples(features):
    lik = randomised(seed=6, kernel_size=3, channels=2, layers=1, features=features)
    x = torch.randint(0, 2, (2, 1, 3, 3)).to(D64)
    params = torch.randn(4, 2, 1 + features, 3, 3, dtype=D64)
    each = torch.stack([lik.log_prob(x, params[k]) for k in range(4)])
    torch.testing.assert_close(lik.log_prob(x, params), each, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("features", [0, 1])
def test_same_data_runs_the_context_once_and_forgets_it(monkeypatch, features):
    """Inside same_data(x) (log_likelihood's chunks of K) the context net runs once for that very
    x; outside, or for another tensor, it runs every call; on exit nothing is kept."""
    lik = randomised(seed=7, kernel_size=3, channels=2, layers=2, features=features)
    x = torch.randint(0, 2, (3, 1, 3, 3)).to(D64)
    params = torch.randn(2, 3, 1 + features, 3, 3, dtype=D64)
    calls = []
    original = AutoregressiveBernoulli._maps
    monkeypatch.setattr(AutoregressiveBernoulli, "_maps", lambda self, v: calls.append(1) or original(self, v))
    want = torch.stack([torch.stack([reference_log_prob(lik, x[b], params[k, b]) for b in range(3)]) for k in range(2)])
    with torch.no_grad():
        with lik.same_data(x):
            first = lik.log_prob(x, params)
            again = lik.log_prob(x, params[:1])
            assert len(calls) == 1, "the second chunk reuses the maps"
            lik.log_prob(x.clone(), params)  # another tensor: its own maps
            assert len(calls) == 2
        torch.testing.assert_close(first, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(again, want[:1], rtol=1e-12, atol=1e-12)
        assert getattr(lik, "_fixed", None) is None, "nothing kept after the block"
        lik.log_prob(x, params)
        lik.log_prob(x, params)
        assert len(calls) == 4, "outside the block every call runs the context net"
    import copy
    import pickle

    pickle.loads(pickle.dumps(copy.deepcopy(lik)))  # no hidden state that cannot be copied


def test_log_likelihood_uses_one_context_per_batch(monkeypatch):
    """The architectures' importance sampling passes its chunks of K inside same_data."""
    calls = []
    original = AutoregressiveBernoulli._maps
    monkeypatch.setattr(AutoregressiveBernoulli, "_maps", lambda self, v: calls.append(len(v)) or original(self, v))
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4))
    for config in ({"latent_dim": 2, "encoder": {"name": "mlp", "hidden": [8]}, "decoder": {"name": "mlp", "hidden": [8]}},
                   {"architecture": "hierarchical", "latent_dims": [3, 2], "hidden": [8]}):
        model = vaezoo.build_model({**config, "data_shape": [1, 4, 4], "prior": "normal",
                                    "likelihood": {"name": "autoregressive_bernoulli", "kernel_size": 3, "channels": 2,
                                                   "features": 1}}).eval()
        calls.clear()
        model.log_likelihood(x, 50, max_elements=16 * 2 * 6 * 5)  # chunks of about 5 samples: 10 chunks
        assert calls == [6], calls


def test_vectors_are_one_row_images_and_channels_stay_apart():
    """A vector (D,) with features is the one-row image (1, 1, D); C channels with S samples at
    once equal each sample alone."""
    lik = randomised(seed=9, kernel_size=3, channels=3, layers=2, features=2)
    x = torch.randint(0, 2, (4, 5)).to(D64)
    params = torch.randn(3, 4, 3 * 5, dtype=D64)
    as_image = lik.log_prob(x[:, None, None, :], params.reshape(3, 4, 3, 1, 5))
    torch.testing.assert_close(lik.log_prob(x, params), as_image, rtol=1e-13, atol=1e-13)
    x2 = torch.randint(0, 2, (2, 2, 3, 3)).to(D64)
    p2 = torch.randn(4, 2, 2 * 3, 3, 3, dtype=D64)
    each = torch.stack([lik.log_prob(x2, p2[k]) for k in range(4)])
    torch.testing.assert_close(lik.log_prob(x2, p2), each, rtol=1e-13, atol=1e-13)
    want = torch.stack([reference_log_prob(lik, x2[b], p2[0, b]) for b in range(2)])
    torch.testing.assert_close(each[0], want, rtol=1e-12, atol=1e-12)


def test_context_without_the_gain_maps_is_refused():
    with pytest.raises(ValueError, match="gain maps"):
        AutoregressiveBernoulli(features=2).context(torch.zeros(1, 1, 3, 3))


@pytest.mark.parametrize("options,words", [
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"kernel_size": 1}, "kernel_size must be >= 3"),
    ({"channels": 0}, "channels must be a positive integer, got 0"),
    ({"layers": 1.5}, "'layers' must be int"),
    ({"features": -1}, "features"),
])
def test_bad_options_are_refused_in_one_line(options, words):
    with pytest.raises((ComponentParamError, ValueError)) as info:
        vaezoo.create("likelihood", "autoregressive_bernoulli", **options)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_bad_option_from_the_command_line_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "model.likelihood={name: autoregressive_bernoulli, kernel_size: 4}", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "kernel_size must be odd" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("model", [
    ["model.latent_dim=2", "model.encoder.hidden=[16]", "model.decoder={name: conv, channels: [4, 4]}"],
    ["model.architecture=hierarchical", "model.latent_dims=[3, 2]", "model.hidden=[16]", "model.prior={name: normal}"],
], ids=["vae", "hierarchical"])
@pytest.mark.parametrize("features", [0, 2])
def test_trains_saves_loads_and_samples(tmp_path, model, features):
    out = tmp_path / "run"
    args = ["train", *model, f"model.likelihood={{name: autoregressive_bernoulli, kernel_size: 3, channels: 4, features: {features}}}",
            "objective={name: iwae, num_samples: 3}", "data.limit=256", "train.epochs=3", "train.batch_size=64",
            "train.lr=0.003", "eval.num_samples=5", "log.images=false", "log.loggers=[jsonl]", "--out", str(out)]
    assert main(args) == 0
    loaded = vaezoo.from_pretrained(str(out / "model")).eval()
    assert isinstance(loaded.likelihood, AutoregressiveBernoulli)
    assert loaded.likelihood.out.weight.abs().sum() > 0  # the context was trained, not left at its zero start
    assert loaded.likelihood.features == features
    x = torch.bernoulli(torch.full((4, *loaded.data_shape), 0.3))
    reloaded = vaezoo.from_pretrained(str(out / "model")).eval()
    torch.manual_seed(0)
    a = loaded.log_likelihood(x, 4)
    torch.manual_seed(0)
    again = reloaded.log_likelihood(x, 4)
    assert torch.isfinite(a).all() and torch.equal(a, again)
    s = loaded.sample(2)
    assert s.shape == (2, *loaded.data_shape) and set(s.unique().tolist()) <= {0.0, 1.0}


def test_non_binary_data_is_refused_naming_this_likelihood():
    with pytest.raises(DataError, match=r"autoregressive_bernoulli likelihood needs binary data in \{0, 1\}; got values in \[0, 1\] — binarize it"):
        AutoregressiveBernoulli().check_data(torch.tensor([[0.0, 0.5, 1.0]]))
