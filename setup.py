"""Builds the C extensions (range coder, predictive coder, coefficient coder, wavelet lifting); everything else is declared in pyproject.toml.

Only a C compiler is needed (x86-64 and aarch64 alike); numpy's headers are not used, the
extension works on the buffer protocol.
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "cvae.edge.codec._rangecoder",
            sources=["edge/codec/_rangecoder.c"],
            extra_compile_args=["-O3", "-std=c99"],
        ),
        Extension(
            "cvae.edge.codec._predictive",
            sources=["edge/codec/_predictive.c"],
            depends=["edge/codec/_bincoder.h"],
            include_dirs=["edge/codec"],
            extra_compile_args=["-O3", "-std=c99"],
        ),
        Extension(
            "cvae.edge.codec._coefs",
            sources=["edge/codec/_coefs.c"],
            depends=["edge/codec/_bincoder.h", "edge/codec/_coefmix.h"],
            include_dirs=["edge/codec"],
            extra_compile_args=["-O3", "-std=c99"],
        ),
        Extension(  # float32 lifting bit-identical to numpy's: no fused multiply-add contraction
            "cvae.edge.codec._wavelet",
            sources=["edge/codec/_wavelet.c"],
            extra_compile_args=["-O3", "-std=c99", "-ffp-contract=off"],
        ),
    ]
)
