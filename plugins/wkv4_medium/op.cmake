# WKV4Medium: the sources of each role (plugins/rrwkvOps.cmake). Its kernels include plugins/wkv4/'s WKV4 step.
rrwkv_op(
  NAME WKV4Medium
  CXX Wkv4Medium
  CPU_SOURCES wkv4MediumCpu.cc
  ORT_SOURCES wkv4MediumOrt.cc
  CUDA_SOURCES wkv4MediumKernel.cu
  PLUGIN_SOURCES wkv4MediumPlugin.cpp
  PLUGIN_HEADER wkv4MediumPlugin.h
  TEST_SHIM_SOURCES wkv4MediumTestShim.cc
  PARITY_SOURCES wkv4MediumParity.cu
)
