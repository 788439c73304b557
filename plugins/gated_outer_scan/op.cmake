# GatedOuterScan: the sources of each role (plugins/rrwkvOps.cmake).
rrwkv_op(
  NAME GatedOuterScan
  CXX GatedOuterScan
  CPU_SOURCES gatedOuterScanCpu.cc
  ORT_SOURCES gatedOuterScanOrt.cc
  CUDA_SOURCES gatedOuterScanKernel.cu
  PLUGIN_SOURCES gatedOuterScanPlugin.cpp
  PLUGIN_HEADER gatedOuterScanPlugin.h
  TEST_SHIM_SOURCES gatedOuterScanTestShim.cc
  PARITY_SOURCES gatedOuterScanParity.cu
)
