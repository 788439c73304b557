/*
 * Error checks shared by the plugin sources. RRWKV_CHECK_CUDA returns the failing cudaError_t from the
 * enclosing function (launchers return cudaError_t); RRWKV_VALIDATE throws std::invalid_argument with the
 * stringified condition and a message, for constructors and host-side argument checks.
 */
#ifndef RRWKV_CHECKS_H
#define RRWKV_CHECKS_H

#include <stdexcept>
#include <string>

#define RRWKV_CHECK_CUDA(call)                                                                                         \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const rrwkvStatus_ = (call);                                                                       \
        if (rrwkvStatus_ != cudaSuccess)                                                                               \
        {                                                                                                              \
            return rrwkvStatus_;                                                                                       \
        }                                                                                                              \
    } while (0)

#define RRWKV_VALIDATE(cond, msg)                                                                                      \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            throw std::invalid_argument(std::string("rrwkv: ") + (msg) + " (failed: " #cond ")");                      \
        }                                                                                                              \
    } while (0)

#endif // RRWKV_CHECKS_H
