//! A hint to start loading a cache line ahead of its use. Lookups of pipelined requests are
//! chains of dependent loads (hash bucket, then item header, then value) that miss the cache
//! on a large table; asking for the next request's lines while this one runs overlaps those
//! misses instead of waiting on each in turn.

/// Asks the CPU to bring the cache line holding `p` into every cache level. Never faults and
/// never reads `p` in the language's sense, so any address, even a dangling or null one, is
/// allowed: a useless hint only costs the instruction.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is part of SSE, which every x86_64 CPU has; it performs no access
    // that can fault and changes no memory.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PRFM is a hint that performs no access that can fault and changes nothing but
    // the caches.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn any_address_is_allowed() {
        let x = 7u64;
        prefetch(&x);
        prefetch(std::ptr::null::<u8>());
        prefetch(usize::MAX as *const u8);
        assert_eq!(x, 7);
    }
}
