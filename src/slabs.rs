//! Slab classes (C's slabs.c). This part computes the class table from the settings exactly as
//! C's `slabs_init` does (`-n` chunk size, `-f` growth factor, 8-byte alignment,
//! `slab_chunk_max`, `-I` page size, `-o slab_sizes`) and prints it at `-vv`. The page pool
//! and per-class free lists build on it.

use crate::settings::Settings;

/// Size of an item header (C's `sizeof(item)` on 64-bit: three links, two times, value length,
/// refcount, flags, class id, key length; 8-byte aligned).
pub const ITEM_HEADER_SIZE: u32 = 48;
/// Chunks are multiples of this.
pub const CHUNK_ALIGN_BYTES: u32 = 8;
/// Class ids are 6 bits; class 0 is the global page pool.
pub const MAX_NUMBER_OF_SLAB_CLASSES: usize = 63 + 1;
/// The first class id that holds items.
pub const POWER_SMALLEST: usize = 1;

/// One slab class: chunk size and chunks per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabClassSpec {
    pub size: u32,
    pub perslab: u32,
}

/// The class table for these parameters. Index 0 of the result is class 1 (POWER_SMALLEST);
/// the last class always has chunks of `slab_chunk_size_max` (C's `power_largest`).
pub fn compute_classes(
    chunk_size: u32,
    factor: f64,
    slab_chunk_size_max: u32,
    slab_page_size: u32,
    slab_sizes: Option<&[u32]>,
) -> Vec<SlabClassSpec> {
    let mut classes = Vec::new();
    let mut size: u32 = ITEM_HEADER_SIZE + chunk_size;
    let mut i = POWER_SMALLEST;
    while i < MAX_NUMBER_OF_SLAB_CLASSES - 1 {
        if let Some(sizes) = slab_sizes {
            match sizes.get(i - 1) {
                Some(&s) if s != 0 => size = s,
                _ => break,
            }
        } else if size as f64 >= slab_chunk_size_max as f64 / factor {
            break;
        }
        if !size.is_multiple_of(CHUNK_ALIGN_BYTES) {
            size += CHUNK_ALIGN_BYTES - (size % CHUNK_ALIGN_BYTES);
        }
        classes.push(SlabClassSpec {
            size,
            perslab: slab_page_size / size,
        });
        if slab_sizes.is_none() {
            // C multiplies an unsigned int by a double and truncates.
            size = (size as f64 * factor) as u32;
        }
        i += 1;
    }
    classes.push(SlabClassSpec {
        size: slab_chunk_size_max,
        perslab: slab_page_size / slab_chunk_size_max.max(1),
    });
    classes
}

/// The class table for the running settings.
pub fn classes_for(s: &Settings) -> Vec<SlabClassSpec> {
    compute_classes(
        s.chunk_size.max(0) as u32,
        s.factor,
        s.slab_chunk_size_max.max(1) as u32,
        s.slab_page_size.max(1) as u32,
        s.slab_sizes.as_deref(),
    )
}

/// The `-vv` start-up lines, one per class.
pub fn format_classes(classes: &[SlabClassSpec]) -> String {
    let mut out = String::new();
    for (n, c) in classes.iter().enumerate() {
        out.push_str(&format!(
            "slab class {:3}: chunk size {:9} perslab {:7}\n",
            n + POWER_SMALLEST,
            c.size,
            c.perslab
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_matches_c() {
        // memcached 1.6.45 -vv with default settings, as the C server prints it.
        let c = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, None);
        assert_eq!(
            format_classes(&c),
            include_str!("../t/data/slab-classes/default.txt")
        );
    }

    #[test]
    fn explicit_sizes() {
        let c = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, Some(&[100, 200, 0]));
        assert_eq!(
            c[0],
            SlabClassSpec {
                size: 104,
                perslab: 10082
            }
        );
        assert_eq!(
            c[1],
            SlabClassSpec {
                size: 200,
                perslab: 5242
            }
        );
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn factor_two_small_pages() {
        let c = compute_classes(48, 2.0, 16 * 1024, 32 * 1024, None);
        let sizes: Vec<u32> = c.iter().map(|c| c.size).collect();
        assert_eq!(sizes, vec![96, 192, 384, 768, 1536, 3072, 6144, 16384]);
    }
}
