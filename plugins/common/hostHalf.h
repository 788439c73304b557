/*
 * IEEE binary16 on the host, without CUDA or ONNX Runtime headers: the CPU kernels' fp16 I/O type
 * (bit-compatible with __half and Ort::Float16_t) and the emulated __half of plugins/tests/cudaEmulation.h.
 * float -> half rounds to nearest even, like CUDA's __float2half / __float2half_rn.
 */
#ifndef RRWKV_HOST_HALF_H
#define RRWKV_HOST_HALF_H

#include <cstdint>
#include <cstring>

namespace rrwkv
{

struct HostHalf
{
    uint16_t bits;
};
static_assert(sizeof(HostHalf) == 2, "HostHalf must be 2 bytes");

inline float halfBitsToFloat(uint16_t h)
{
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t const exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    uint32_t bits = 0;
    if (exponent == 0x1Fu)
    {
        bits = sign | 0x7F800000u | (mantissa << 13); // inf / NaN (payload kept)
    }
    else if (exponent != 0)
    {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13); // 112 = 127 - 15
    }
    else if (mantissa != 0)
    {
        int32_t e = 113; // subnormal: normalise (value = mantissa * 2^-24)
        while ((mantissa & 0x400u) == 0)
        {
            mantissa <<= 1;
            --e;
        }
        bits = sign | (static_cast<uint32_t>(e) << 23) | ((mantissa & 0x3FFu) << 13);
    }
    else
    {
        bits = sign; // +-0
    }
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

inline uint16_t floatToHalfBits(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, sizeof(x));
    uint16_t const sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    uint32_t const absX = x & 0x7FFFFFFFu;
    if (absX >= 0x7F800000u)
    {
        // inf stays inf; NaN becomes a quiet NaN keeping the top payload bits
        return static_cast<uint16_t>(sign | 0x7C00u | (absX > 0x7F800000u ? (0x200u | ((absX >> 13) & 0x3FFu)) : 0u));
    }
    if (absX >= 0x477FF000u) // >= 65520 rounds to inf
    {
        return static_cast<uint16_t>(sign | 0x7C00u);
    }
    if (absX < 0x38800000u) // below the smallest normal half 2^-14: subnormal or zero
    {
        if (absX < 0x33000000u) // <= 2^-25 rounds to zero (exactly 2^-25 is a tie, even = 0)
        {
            return sign;
        }
        uint32_t const exponent = absX >> 23;
        uint32_t const mantissa = (absX & 0x7FFFFFu) | 0x800000u;
        uint32_t const shift = 126u - exponent; // value = mantissa * 2^(exponent-150); half unit 2^-24
        uint32_t const halfMant = mantissa >> shift;
        uint32_t const rest = mantissa & ((1u << shift) - 1u);
        uint32_t const halfway = 1u << (shift - 1u);
        uint32_t const rounded = halfMant + ((rest > halfway || (rest == halfway && (halfMant & 1u))) ? 1u : 0u);
        return static_cast<uint16_t>(sign | rounded);
    }
    // normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even (a carry may bump the
    // exponent, which is correct, up to 65504 -> handled above)
    uint32_t const rebased = absX - 0x38000000u; // exponent bias 127 -> 15, in place
    uint32_t const halfBits = rebased >> 13;
    uint32_t const rest = rebased & 0x1FFFu;
    uint32_t const rounded = halfBits + ((rest > 0x1000u || (rest == 0x1000u && (halfBits & 1u))) ? 1u : 0u);
    return static_cast<uint16_t>(sign | rounded);
}

// Load / store between an I/O element and the fp32 compute type (CPU kernels; overloads for float as well).
inline float toFloat(float x)
{
    return x;
}

inline float toFloat(HostHalf x)
{
    return halfBitsToFloat(x.bits);
}

template <typename T>
inline T fromFloat(float x);

template <>
inline float fromFloat<float>(float x)
{
    return x;
}

template <>
inline HostHalf fromFloat<HostHalf>(float x)
{
    return HostHalf{floatToHalfBits(x)};
}

} // namespace rrwkv

#endif // RRWKV_HOST_HALF_H
