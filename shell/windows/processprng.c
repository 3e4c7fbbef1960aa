/*
 * A stand-in for bcryptprimitives.dll, for running Rust programs under Wine 8.
 *
 * Rust's std (>= 1.78) takes its random bytes from bcryptprimitives.dll!ProcessPrng,
 * which Windows 10 and later have and Wine 8 does not: without this DLL every Rust
 * executable fails to load (status c0000135). shell/windows.sh builds it with the
 * MinGW compiler into the Wine prefix's system32 only; it is never shipped.
 *
 * ProcessPrng is documented to always succeed, and std ignores its result, so a
 * failure of the source below it ends the process instead of handing out bytes
 * that are not random.
 */
#include <windows.h>
#include <stdlib.h>

/* RtlGenRandom: advapi32's exported name for it is SystemFunction036. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        /* SystemFunction036 takes a ULONG, so larger requests go in pieces. */
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            abort();
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
