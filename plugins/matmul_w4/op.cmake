# MatMulW4: the sources of each role (plugins/rrwkvOps.cmake).
rrwkv_op(
  NAME MatMulW4
  CXX MatMulW4
  CPU_SOURCES matmulW4Cpu.cc
  ORT_SOURCES matmulW4Ort.cc
  CUDA_SOURCES matmulW4Kernel.cu
  PLUGIN_SOURCES matmulW4Plugin.cpp
  PLUGIN_HEADER matmulW4Plugin.h
  TEST_SHIM_SOURCES matmulW4TestShim.cc
  PARITY_SOURCES matmulW4Parity.cu
)
