"""The PyTorch reference runs that the other jobs compare against (needs torch; builds on export/ and runtime/).

torch_session.py     a checkpoint's PyTorch model behind the runtime's session interface (TorchSession)
writer.py            `python -m rrwkv_trt.reference.writer`: MODEL/reference/ for `rrwkv-trt compare` and Polygraphy
verify.py            `python -m rrwkv_trt.reference.verify`: ONNX Runtime vs PyTorch logits (`make demo`)
precision_check.py   `python -m rrwkv_trt.reference.precision_check`: fp16 exports vs fp32 exports
"""
