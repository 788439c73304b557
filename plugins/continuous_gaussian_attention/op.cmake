# ContinuousGaussianAttention: the sources of each role (plugins/rrwkvOps.cmake).
rrwkv_op(
  NAME ContinuousGaussianAttention
  CXX ContinuousGaussianAttention
  CPU_SOURCES continuousGaussianAttentionCpu.cc
  ORT_SOURCES continuousGaussianAttentionOrt.cc
  CUDA_SOURCES continuousGaussianAttentionKernel.cu
  PLUGIN_SOURCES continuousGaussianAttentionPlugin.cpp
  PLUGIN_HEADER continuousGaussianAttentionPlugin.h
  TEST_SHIM_SOURCES continuousGaussianAttentionTestShim.cc
  PARITY_SOURCES continuousGaussianAttentionParity.cu
)
