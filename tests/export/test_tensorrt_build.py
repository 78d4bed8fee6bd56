"""What ``cvae-export --target trt`` decides before TensorRT builds anything (no TensorRT or GPU here: the builds
themselves are tests marked ``trt`` that run on the board): which GDN layers stay in FP32, the engines' names and
the precision each half may have."""
from __future__ import annotations

import types

import pytest

from cvae.export.tensorrt import _pin_gdn_to_fp32, build_engine, engine_name


class _Layer:
    def __init__(self, name, kind, inputs, op=None):
        self.name, self.type, self.op = name, kind, op
        self.inputs = [types.SimpleNamespace(name=n) for n in inputs]
        self.num_inputs, self.num_outputs = len(inputs), 1
        self.precision, self.out_types = None, {}

    def get_input(self, j):
        return self.inputs[j]

    def get_output(self, j):
        return types.SimpleNamespace(name=self.name)

    def set_output_type(self, j, t):
        self.out_types[j] = t


TRT = types.SimpleNamespace(
    LayerType=types.SimpleNamespace(ELEMENTWISE="elementwise", CONVOLUTION="conv", DECONVOLUTION="deconv",
                                    UNARY="unary"),
    ElementWiseOperation=types.SimpleNamespace(DIV="div", PROD="prod", SUM="sum"), float32="float32")


def _network(layers):
    return types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])


def _gdn(prefix, x, inverse):
    """The layers of one GDN (x / sqrt(beta + gamma * x^2)) or inverse GDN (x * sqrt(...)) on tensor ``x``, as
    TensorRT parses the exported graphs: the square, the convolution (its bias a separate sum), the root, the
    division or product."""
    e, t = TRT.LayerType, TRT.ElementWiseOperation
    return [_Layer(f"{prefix}sq", e.ELEMENTWISE, [x, x], t.PROD),
            _Layer(f"{prefix}conv", e.CONVOLUTION, [f"{prefix}sq"]),
            _Layer(f"{prefix}bias", e.ELEMENTWISE, [f"{prefix}conv", f"{prefix}beta"], t.SUM),
            _Layer(f"{prefix}sqrt", e.UNARY, [f"{prefix}bias"]),
            _Layer(f"{prefix}out", e.ELEMENTWISE, [x, f"{prefix}sqrt"], t.PROD if inverse else t.DIV)]


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_and_inverse_gdn_are_pinned_to_fp32_and_nothing_after(inverse):
    conv = TRT.LayerType.DECONVOLUTION if inverse else TRT.LayerType.CONVOLUTION
    layers = [_Layer("c0", conv, ["in"]), *_gdn("g0", "c0", inverse), _Layer("c1", conv, ["g0out"]),
              *_gdn("g1", "c1", inverse), _Layer("c2", conv, ["g1out"])]
    assert _pin_gdn_to_fp32(_network(layers), TRT) == 10
    pinned = {layer.name for layer in layers if layer.precision == "float32"}
    assert pinned == {f"g{i}{p}" for i in (0, 1) for p in ("sq", "conv", "bias", "sqrt", "out")}
    assert all(layer.out_types == {0: "float32"} for layer in layers if layer.name in pinned)


def test_engine_names_say_their_half():
    assert engine_name("Orin (nvgpu)", "10.3", 256, 4, "fp16") == "encoder_256x256_b4_fp16_orin-nvgpu_trt10.3.engine"
    assert engine_name("Orin", "10.3", 256, 4, "fp16", "decoder").startswith("decoder_256x256_b4_fp16_orin")


def test_the_decoder_has_no_int8_engine_and_halves_are_named(tmp_path):
    with pytest.raises(ValueError, match="decoder has no INT8"):
        build_engine(tmp_path, 256, 4, "int8", half="decoder")
    with pytest.raises(ValueError, match="'encoder' or 'decoder'"):
        build_engine(tmp_path, 256, 4, "fp16", half="synthesis")
