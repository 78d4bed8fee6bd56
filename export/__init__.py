"""torch checkpoint -> model bundle (ONNX, frozen tables), parity checks, INT8 Q/DQ, TensorRT engines."""
