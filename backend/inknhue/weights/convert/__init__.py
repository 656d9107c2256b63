"""Converters from foreign weight formats to files inkn'hue loads safely (JSON and safetensors).

`keras_h5`: whole-model Keras HDF5 files (Style2Paints' `*.net`), the only module that reads
HDF5; `keras_inspect`: what `inknhue style2paints inspect` reports about such files.
"""
