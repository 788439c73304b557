/*
 * Shared by the extern "C" entry points of librrwkv_cpu_testshim.so (tests/plugins/, ctypes): tests/cpuTestShim.cc
 * and every op folder's TEST_SHIM_SOURCES (<op>TestShim.cc). Includes the CUDA emulation first, so a .cuh included
 * after it compiles for the CPU. fp16 tensors cross the C boundary as uint16 bits.
 */
#ifndef RRWKV_CPU_TEST_SHIM_H
#define RRWKV_CPU_TEST_SHIM_H

#include "tests/cudaEmulation.h"

#include "common/hostHalf.h"

#include <cstdint>

namespace rrwkv
{

inline HostHalf const* asHalf(uint16_t const* p)
{
    return reinterpret_cast<HostHalf const*>(p);
}

inline HostHalf* asHalf(uint16_t* p)
{
    return reinterpret_cast<HostHalf*>(p);
}

} // namespace rrwkv

#endif // RRWKV_CPU_TEST_SHIM_H
