# MatMulW8: the sources of each role (plugins/rrwkvOps.cmake).
rrwkv_op(
  NAME MatMulW8
  CXX MatMulW8
  CPU_SOURCES matmulW8Cpu.cc
  ORT_SOURCES matmulW8Ort.cc
  CUDA_SOURCES matmulW8Kernel.cu
  PLUGIN_SOURCES matmulW8Plugin.cpp
  PLUGIN_HEADER matmulW8Plugin.h
  TEST_SHIM_SOURCES matmulW8TestShim.cc
  PARITY_SOURCES matmulW8Parity.cu
)
