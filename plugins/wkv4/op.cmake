# WKV4: the sources of each role (plugins/rrwkvOps.cmake); the ops that build on WKV4 include its headers.
rrwkv_op(
  NAME WKV4
  CXX Wkv4
  CPU_SOURCES wkv4Cpu.cc
  ORT_SOURCES wkv4Ort.cc
  CUDA_SOURCES wkv4Kernel.cu
  PLUGIN_SOURCES wkv4Plugin.cpp
  PLUGIN_HEADER wkv4Plugin.h
  TEST_SHIM_SOURCES wkv4TestShim.cc
  PARITY_SOURCES wkv4Parity.cu
)
