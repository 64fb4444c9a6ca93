"""Built-in encoders and decoders (MLP, convolutional, categorical), registered through the hooks."""

from ..hookspecs import hookimpl


@hookimpl
def vaezoo_register_encoders(register):
    register("mlp", "vaezoo.nets.mlp:MLPEncoder")
    register("conv", "vaezoo.nets.conv:ConvEncoder")
    register("categorical", "vaezoo.nets.categorical:CategoricalEncoder")


@hookimpl
def vaezoo_register_decoders(register):
    register("mlp", "vaezoo.nets.mlp:MLPDecoder")
    register("conv", "vaezoo.nets.conv:ConvDecoder")
