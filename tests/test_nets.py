"""Built-in encoders and decoders: shapes, leading dims, dtypes, gradients, errors."""

from __future__ import annotations

import pytest
import torch

import vaezoo
from vaezoo.components import Decoder, Encoder
from vaezoo.errors import ComponentParamError, DataError
from vaezoo.nets.conv import ConvDecoder, ConvEncoder, side_sizes
from vaezoo.nets.mlp import MLPDecoder, MLPEncoder

IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 7, 9)]
ALL_SHAPES = [*IMAGE_SHAPES, (64,)]
LATENT = 5
SMALL = {"mlp": {"hidden": [32, 16]}, "conv": {"channels": [8, 16], "hidden": 32}}
SMALL_DEC = {"mlp": {"hidden": [16, 32]}, "conv": {"channels": [16, 8], "hidden": 32}}


def kinds_for(shape):
    return ["mlp", "conv"] if len(shape) == 3 else ["mlp"]


def cases():
    return [(kind, shape) for shape in ALL_SHAPES for kind in kinds_for(shape)]


def make_encoder(kind, shape, **kw):
    return vaezoo.create("encoder", kind, data_shape=shape, latent_dim=LATENT, **{**SMALL[kind], **kw})


def make_decoder(kind, param_shape, **kw):
    return vaezoo.create("decoder", kind, latent_dim=LATENT, param_shape=param_shape, **{**SMALL_DEC[kind], **kw})


@pytest.mark.parametrize("kind,shape", cases())
def test_encoder_shapes_and_rsample(kind, shape):
    torch.manual_seed(0)
    enc = make_encoder(kind, shape)
    assert isinstance(enc, Encoder)
    q = enc(torch.rand(4, *shape))
    assert q.batch_shape == (4,) and q.event_shape == (LATENT,)
    assert q.has_rsample
    z = q.rsample((3,))
    assert z.shape == (3, 4, LATENT)
    assert (q.base_dist.scale > 0).all()
    assert q.log_prob(z).shape == (3, 4)


@pytest.mark.parametrize("kind,shape", cases())
@pytest.mark.parametrize("blocks", [2, 15])
def test_decoder_exact_param_shape(kind, shape, blocks):
    torch.manual_seed(0)
    param_shape = (blocks * shape[0], *shape[1:])
    dec = make_decoder(kind, param_shape)
    assert isinstance(dec, Decoder)
    assert dec(torch.randn(4, LATENT)).shape == (4, *param_shape)


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 4), (13, 17), (31, 30)])
@pytest.mark.parametrize("steps", [1, 3])
def test_conv_roundtrip_any_size(hw, steps):
    shape = (2, *hw)
    enc = ConvEncoder(shape, LATENT, channels=[4] * steps, hidden=0)
    dec = ConvDecoder(LATENT, (6, *hw), channels=[4] * steps, hidden=0, kernel_size=5)
    z = enc(torch.rand(3, *shape)).rsample()
    assert dec(z).shape == (3, 6, *hw)


def test_side_sizes_halve_rounding_up():
    assert side_sizes(7, 3) == [7, 4, 2, 1]
    assert side_sizes(28, 2) == [28, 14, 7]


@pytest.mark.parametrize("kind,shape", cases())
def test_decoder_leading_dims_match_per_sample(kind, shape):
    torch.manual_seed(0)
    param_shape = (2 * shape[0], *shape[1:])
    dec = make_decoder(kind, param_shape).double()
    z = torch.randn(3, 4, LATENT, dtype=torch.float64)
    out = dec(z)
    assert out.shape == (3, 4, *param_shape)
    for k in range(3):
        torch.testing.assert_close(out[k], dec(z[k]))
    # a single z without batch dims also works
    torch.testing.assert_close(dec(z[1, 2]), out[1, 2])


@pytest.mark.parametrize("kind,shape", cases())
def test_encoder_leading_dims_match_per_sample(kind, shape):
    torch.manual_seed(0)
    enc = make_encoder(kind, shape).double()
    x = torch.rand(2, 3, *shape, dtype=torch.float64)
    q = enc(x)
    assert q.batch_shape == (2, 3)
    torch.testing.assert_close(q.mean[1], enc(x[1]).mean)


@pytest.mark.parametrize("kind,shape", cases())
def test_float64_and_gradients(kind, shape):
    torch.manual_seed(0)
    enc = make_encoder(kind, shape).double()
    dec = make_decoder(kind, (2 * shape[0], *shape[1:])).double()
    x = torch.rand(4, *shape, dtype=torch.float64)
    q = enc(x)
    z = q.rsample()
    assert z.dtype == torch.float64
    out = dec(z)
    assert out.dtype == torch.float64
    (out.square().mean() + q.log_prob(z).mean()).backward()
    for net in (enc, dec):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # at least the first layer receives a non-zero gradient
        first = next(net.parameters())
        assert first.grad.abs().sum() > 0


@pytest.mark.parametrize("act", ["relu", "gelu", "silu", "tanh", "elu"])
def test_all_activations_build(act):
    enc = MLPEncoder((6,), 2, hidden=[4], activation=act)
    assert enc(torch.rand(3, 6)).batch_shape == (3,)
    assert type(enc.body[1]).__name__.lower() == act


@pytest.mark.parametrize("cls,args", [
    (MLPEncoder, ((64,), 4)), (MLPDecoder, (4, (64,))),
    (ConvEncoder, ((1, 8, 8), 4)), (ConvDecoder, (4, (2, 8, 8))),
])
def test_bad_activation_suggests(cls, args):
    with pytest.raises(ValueError) as err:
        cls(*args, activation="rleu")
    msg = str(err.value)
    assert "Did you mean 'relu'?" in msg
    for name in ["elu", "gelu", "relu", "silu", "tanh"]:
        assert repr(name) in msg


@pytest.mark.parametrize("shape", [(64,), (2, 8), (1, 1, 8, 8)])
def test_conv_rejects_non_image_shapes(shape):
    with pytest.raises(ValueError, match=r"\(C, H, W\).*'mlp' encoder"):
        ConvEncoder(shape, 4)
    with pytest.raises(ValueError, match=r"\(C, H, W\).*'mlp' decoder"):
        ConvDecoder(4, shape)


@pytest.mark.parametrize("bad,match", [
    ({"channels": []}, "at least one"),
    ({"channels": [8, 0]}, "positive integer"),
    ({"kernel_size": 4}, "odd"),
    ({"hidden": -1}, "non-negative"),
    ({"min_scale": 0.0}, "min_scale"),
])
def test_conv_encoder_bad_params(bad, match):
    with pytest.raises(ValueError, match=match):
        ConvEncoder((1, 8, 8), 4, **bad)


def test_bad_latent_and_shape():
    with pytest.raises(ValueError, match="latent_dim"):
        MLPEncoder((4,), 0)
    with pytest.raises(ValueError, match="data_shape"):
        MLPEncoder((4, 0), 2)
    with pytest.raises(ValueError, match="param_shape"):
        MLPDecoder(2, ())


def test_registry_checks_param_types():
    with pytest.raises(ComponentParamError, match="hidden"):
        vaezoo.create("encoder", "mlp", data_shape=(4,), latent_dim=2, hidden="64")
    with pytest.raises(ComponentParamError, match="Did you mean 'channels'"):
        vaezoo.create("encoder", "conv", data_shape=(1, 8, 8), latent_dim=2, chanels=[4])


def test_wrong_input_shape_is_a_data_error():
    enc = MLPEncoder((1, 8, 8), 3, hidden=[8])
    with pytest.raises(DataError, match=r"\(\.\.\., 1, 8, 8\)"):
        enc(torch.rand(2, 64))
    dec = ConvDecoder(3, (2, 8, 8), channels=[4])
    with pytest.raises(DataError, match="latent_dim"):
        dec(torch.rand(2, 4))


def test_min_scale_floor():
    enc = MLPEncoder((4,), 2, hidden=[], min_scale=0.25)
    with torch.no_grad():
        enc.head.linear.bias.fill_(-1e4)
    scale = enc(torch.rand(3, 4)).base_dist.scale
    torch.testing.assert_close(scale, torch.full_like(scale, 0.25))


def test_gated_dense_is_a_linear_unit_times_a_sigmoid_gate():
    """GatedDense against its definition with two separate linear maps, in float64."""
    from vaezoo.nets.layers import GatedDense

    torch.manual_seed(0)
    layer = GatedDense(6, 4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    w, b = layer.linear.weight, layer.linear.bias
    want = (x @ w[:4].T + b[:4]) * torch.sigmoid(x @ w[4:].T + b[4:])
    torch.testing.assert_close(layer(x), want)


@pytest.mark.parametrize("cls,args", [(MLPEncoder, ((6,), 2)), (MLPDecoder, (2, (6,)))])
def test_gated_mlp_uses_gated_layers_and_counts_them(cls, args):
    from vaezoo.nets.layers import GatedDense

    plain, gated = cls(*args, hidden=[8, 4]), cls(*args, hidden=[8, 4], activation="gated")
    assert [type(m).__name__ for m in gated.body] == ["GatedDense", "GatedDense"]
    hidden_params = sum(p.numel() for m in plain.body for p in m.parameters())
    assert sum(p.numel() for m in gated.body for p in m.parameters()) == 2 * hidden_params
    out = gated(torch.rand(3, *args[0]) if cls is MLPEncoder else torch.randn(3, 2))
    assert (out.batch_shape if cls is MLPEncoder else out.shape[:1]) == (3,)
    assert isinstance(gated.body[0], GatedDense)


def test_gated_is_for_fully_connected_layers_only():
    with pytest.raises(ValueError, match="activation"):
        ConvEncoder((1, 8, 8), 4, activation="gated")
    from vaezoo.errors import ConfigError

    cfg = {"architecture": "hierarchical", "data_shape": [1, 8, 8], "latent_dims": [4, 2], "hidden": [8],
           "prior": {"name": "normal"}, "likelihood": {"name": "bernoulli"}, "activation": "gated"}
    model = vaezoo.build_model(cfg)
    assert any(type(m).__name__ == "GatedDense" for m in model.modules())
    assert torch.isfinite(model.elbo(torch.rand(3, 1, 8, 8).round())["loss"]).all()
    with pytest.raises(ConfigError, match="model.activation"):
        vaezoo.build_model({**cfg, "blocks": "conv", "channels": [4, 4]})
