# LTMUpdate: the sources of each role (plugins/rrwkvOps.cmake).
rrwkv_op(
  NAME LTMUpdate
  CXX LtmUpdate
  CPU_SOURCES ltmUpdateCpu.cc
  ORT_SOURCES ltmUpdateOrt.cc
  CUDA_SOURCES ltmUpdateKernel.cu
  PLUGIN_SOURCES ltmUpdatePlugin.cpp
  PLUGIN_HEADER ltmUpdatePlugin.h
  TEST_SHIM_SOURCES ltmUpdateTestShim.cc
  PARITY_SOURCES ltmUpdateParity.cu
)
