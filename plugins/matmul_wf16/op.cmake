# MatMulWF16: the sources of each role (plugins/rrwkvOps.cmake).
rrwkv_op(
  NAME MatMulWF16
  CXX MatMulWF16
  CPU_SOURCES matmulWF16Cpu.cc
  ORT_SOURCES matmulWF16Ort.cc
  CUDA_SOURCES matmulWF16Kernel.cu
  PLUGIN_SOURCES matmulWF16Plugin.cpp
  PLUGIN_HEADER matmulWF16Plugin.h
  TEST_SHIM_SOURCES matmulWF16TestShim.cc
  PARITY_SOURCES matmulWF16Parity.cu
)
