/*
 * RRWKV_HD marks the inline math shared by the CUDA kernels (nvcc) and the CPU kernels (g++):
 * __host__ __device__ when nvcc compiles the translation unit, nothing otherwise.
 */
#ifndef RRWKV_HOSTDEVICE_H
#define RRWKV_HOSTDEVICE_H

#if defined(__CUDACC__)
#define RRWKV_HD __host__ __device__
#else
#define RRWKV_HD
#endif

#endif // RRWKV_HOSTDEVICE_H
