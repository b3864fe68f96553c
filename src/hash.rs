//! Key hash functions (C: hash.c, murmur3_hash.c, jenkins_hash.c, xxhash.h).
//!
//! Each function returns exactly the `uint32_t` the C server computes for the same key bytes on a
//! little-endian machine, so hash table buckets and item lock striping match C. `-o
//! hash_algorithm=` picks one of them; murmur3 is the default.

/// Key hash for the hash table (`-o hash_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Jenkins,
    Murmur3,
    Xxh3,
}

impl HashAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Jenkins => "jenkins",
            HashAlgorithm::Murmur3 => "murmur3",
            HashAlgorithm::Xxh3 => "xxh3",
        }
    }
}

/// The function that hashes keys with `alg` (C: `hash_init`).
#[inline]
pub fn hash_fn(alg: HashAlgorithm) -> fn(&[u8]) -> u32 {
    match alg {
        HashAlgorithm::Jenkins => jenkins_32,
        HashAlgorithm::Murmur3 => murmur3_32,
        HashAlgorithm::Xxh3 => xxh3_32,
    }
}

#[inline(always)]
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

// ---------------------------------------------------------------------------------------------
// MurmurHash3, x86 32-bit flavour. memcached's entry point takes no seed: the seed is 0. Key
// length enters the finaliser truncated to 32 bits, as the C xors a size_t into a uint32_t.

const M3_C1: u32 = 0xcc9e_2d51;
const M3_C2: u32 = 0x1b87_3593;

#[inline(always)]
fn m3_scramble(k: u32) -> u32 {
    k.wrapping_mul(M3_C1).rotate_left(15).wrapping_mul(M3_C2)
}

/// MurmurHash3_x86_32 with seed 0 (memcached's `murmur3` hash, the default).
#[inline]
pub fn murmur3_32(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    let mut words = key.chunks_exact(4);
    for w in &mut words {
        h ^= m3_scramble(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Remaining 1..=3 bytes, little-endian, zero-padded.
        let k = rest
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        h ^= m3_scramble(k);
    }
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

// ---------------------------------------------------------------------------------------------
// Bob Jenkins' lookup3 `hashlittle`, initval 0. The C has word-, half-word- and byte-reading
// paths chosen by key alignment; on little-endian they all compute this byte-wise definition
// (the word paths mask away whatever lies past the key's end).

#[inline(always)]
fn lk3_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline(always)]
fn lk3_final(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

/// lookup3 `hashlittle(key, len, 0)` (memcached's `jenkins` hash).
#[inline]
pub fn jenkins_32(key: &[u8]) -> u32 {
    let init = 0xdead_beef_u32.wrapping_add(key.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    if key.is_empty() {
        return c;
    }
    // Every 12-byte block but the last goes through mix(); the last block (1..=12 bytes, so a
    // key of exactly 12n bytes ends with a full block) is zero-padded and goes through final().
    let full = (key.len() - 1) / 12;
    let (head, tail) = key.split_at(full * 12);
    for blk in head.chunks_exact(12) {
        a = a.wrapping_add(le32(blk, 0));
        b = b.wrapping_add(le32(blk, 4));
        c = c.wrapping_add(le32(blk, 8));
        lk3_mix(&mut a, &mut b, &mut c);
    }
    let mut last = [0u8; 12];
    last[..tail.len()].copy_from_slice(tail);
    a = a.wrapping_add(le32(&last, 0));
    b = b.wrapping_add(le32(&last, 4));
    c = c.wrapping_add(le32(&last, 8));
    lk3_final(a, b, c)
}

// ---------------------------------------------------------------------------------------------
// XXH3, 64-bit output, default secret, seed 0; memcached keeps the low 32 bits. The
// xxhash-rust crate computes it (with the same results as xxhash.h, checked below).

/// XXH3_64bits(key) (no seed, default secret).
#[inline]
pub fn xxh3_64(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// memcached's `xxh3` hash: the low 32 bits of XXH3_64bits(key).
#[inline]
pub fn xxh3_32(key: &[u8]) -> u32 {
    xxh3_64(key) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic key bytes: over any 256 consecutive positions every byte value occurs once.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(131) + 7) as u8).collect()
    }

    // Golden values from the C 1.6.45 sources (murmur3_hash.c, jenkins_hash.c with
    // ENDIAN_LITTLE, xxhash.h with XXH_INLINE_ALL, (uint32_t)XXH3_64bits) on x86_64; each key was
    // hashed at 8 different buffer alignments, all of which agreed. Index = key length of
    // pattern().
    const MURMUR3_PATTERN: [u32; 301] = [
        0x00000000, 0x6882f382, 0xce204136, 0x64953856, 0x66cfd3f1, 0xe63c389d, 0x65d6a19e,
        0xd13e86f7, 0x6b5d129f, 0x1f73414c, 0x4d28d583, 0x2adf4a07, 0x28f28e7a, 0x3af36f4d,
        0x0fce258c, 0x0683cce2, 0x59caadcb, 0x83ba57ec, 0x1758f070, 0xe2941fc9, 0xa7b732a6,
        0xdd7216c3, 0x055ced6e, 0x6b8cd990, 0xb7123c7f, 0x596b8409, 0xe697a514, 0xf7d60a1b,
        0x5f48ec28, 0x57c24065, 0x0e20d964, 0xe54a3441, 0x1b3af857, 0x9b1ddc82, 0x63bc1eef,
        0xa128d4a8, 0xaf1a5d8d, 0xcc1d9ef0, 0x1cbdb7d9, 0xecef2bc5, 0x56cabf0b, 0x62ebb33c,
        0x5abe0d34, 0xce6fb63d, 0x94a2f355, 0x95931463, 0xc914a3ef, 0x944a76ca, 0xb4efe8bf,
        0xe81f72aa, 0x3613cf64, 0x0d6fba73, 0x4b29830f, 0x7ed9d540, 0x89e8f655, 0x5f972a8a,
        0xc4187435, 0xebc137a8, 0xe58d7705, 0x6e1f4467, 0x37e5574a, 0x8345485c, 0x03a044fe,
        0xc084cf27, 0x3ae8fe1e, 0xfe26a555, 0x56cda1bf, 0xb6143575, 0xa1138584, 0x13042a2b,
        0x1ad8fde9, 0xcf8ff0a0, 0xa58c82c2, 0x5ce33642, 0x5ba72296, 0x6dbf7b87, 0xf5dd8a4d,
        0xd4342e17, 0x88e9a71c, 0x3f2b8fd0, 0x0e23ac7e, 0xdad174fe, 0xd3d13c58, 0x0bd52351,
        0x4ae02e79, 0x41caa8ef, 0x945531a4, 0x4bc8b7f5, 0x0e0b2dd3, 0x1be9a3d6, 0x10db751b,
        0x59491dec, 0x969f1f37, 0x53ce5c4c, 0x206117c9, 0x03a08626, 0xdc344c55, 0x23203bed,
        0xd5f2e77a, 0xfb8d3ae9, 0x23fcaef6, 0xa5c8c585, 0x3a2b3582, 0xa9c2909e, 0x29bc74e0,
        0xb5c2488a, 0x06b02eae, 0xaeb42dff, 0x14064380, 0x56760cc8, 0xdf5d6cc5, 0x24fc2f16,
        0x82f3feba, 0x3280788e, 0x89d6eb74, 0x5224291c, 0x5ae27c30, 0x31783d45, 0x121ce35e,
        0x4afe00a5, 0xbbe94442, 0xcf154aa7, 0x7d4f3c8c, 0x5230bd8e, 0xb86c38d1, 0x6ed3d741,
        0x38456f40, 0x7c55f88b, 0x5159f26d, 0x5c022808, 0x96eb9cf0, 0x4b197656, 0xd0cce38e,
        0xe55d09e5, 0x4e441519, 0x78394eca, 0xef9fa382, 0xe69732d5, 0xe3cbaa2e, 0xce78d19a,
        0xf169a4e4, 0x41f853ee, 0x55417b00, 0x190037ef, 0x4415fc4f, 0x53e9443d, 0x0e2c38d3,
        0x91ca68da, 0x879269fb, 0xda5f166f, 0x75cbc415, 0xf5f46ea9, 0x40bceb66, 0x17d55601,
        0x9ac71c5f, 0x78a0c7ee, 0x7b9f3b5e, 0xee5b6b48, 0x573bee4d, 0x36e6e961, 0x785b0c02,
        0xde2a0138, 0x7f6a67bc, 0xa6ae1382, 0xb958e5e5, 0x22e99bdb, 0xf158e157, 0x5c4dd248,
        0x62527f35, 0x91a2500f, 0xfa0de4fc, 0x3d162c4a, 0x011ae210, 0x2414b900, 0x303e67e8,
        0xcae4e720, 0x3c7d03d2, 0x25934e77, 0x2ef5c92e, 0xb35f9cad, 0x052a75b1, 0x4505fe24,
        0xd73e3eb8, 0x316b4581, 0xaa3aa7fa, 0xa3bc5adb, 0x297a6076, 0x36c7d35f, 0xdd0b6758,
        0x67779ef7, 0x60102b8f, 0x5a871e8d, 0xceea0269, 0x93a08043, 0x548a49fa, 0x27705731,
        0xe00a432c, 0x390a072c, 0x6516020d, 0x083bb579, 0x0c55e294, 0x3493b573, 0x6d482e65,
        0xa74fa2bb, 0x415d0389, 0x47ad226b, 0x0be4df89, 0xad617010, 0x73de20b6, 0xb23172c9,
        0xdf897cd6, 0x36b02a80, 0x291f3436, 0x5168ac13, 0x26ab62a5, 0xf5326350, 0xfc628666,
        0xd328bcd9, 0x15c7f2af, 0x5eae0552, 0x6ce69b9a, 0x506d3f66, 0x5bc7f218, 0x4d8444e2,
        0x97794a2a, 0x170025c9, 0x9c747f7f, 0x1aad8c17, 0x3f99b42b, 0xf0411ede, 0x84743204,
        0x3e2e95cc, 0x682b4935, 0xfda26433, 0x459744f5, 0x1fc50ef6, 0xd18eb5a4, 0xda10a70e,
        0xb9813991, 0x239fb139, 0x8a82056e, 0xd0104722, 0xbec1404c, 0x2d0ad8d7, 0x76e3c3fd,
        0x1d8d5a61, 0xfadc7c57, 0x52f5dbe0, 0x64e112e4, 0xd574b44a, 0xb38386de, 0xb6beaedd,
        0x0905ea1e, 0xe81616e5, 0x588b3bf0, 0xa41df46f, 0x505eaabf, 0xca8dd3dd, 0x2a31489c,
        0xa98f2781, 0x42266d75, 0x6a2d4290, 0x5196ea02, 0x75fe6118, 0x8d91a31c, 0xd26bbb7b,
        0x4f28d351, 0x5eb902d9, 0x13058c4e, 0x9f234445, 0xfb1ed62d, 0x3129462d, 0x47aa248d,
        0x8143ea19, 0xbedb3126, 0xde724724, 0x74848d21, 0x9037a151, 0xe64ab65f, 0xec1179d0,
        0x30f739e0, 0xcbd0f8ec, 0x98c4026b, 0x6b4d69e9, 0xa401f048, 0xad68bf2f, 0xfc41da61,
        0xc80b35b1, 0x821ba803, 0xd5b80ee0, 0x167f669f, 0x92ffa2c5, 0xfe680189, 0x4b585369,
        0x2fee7ab5, 0x4b98f939, 0x12c7c122, 0x2ac1d62a, 0xa6cb60b1, 0xabab8361, 0xb9311be1,
    ];
    const JENKINS_PATTERN: [u32; 301] = [
        0xdeadbeef, 0xa46f3a98, 0x111931de, 0x046e7a60, 0x5c2a6fa5, 0x94d4af51, 0xc6210d0a,
        0x50038cf8, 0x8dd72a95, 0xebbc3dde, 0xce4d1f75, 0x8a45901b, 0x0d9ac26b, 0x7b4f42a3,
        0x3f894a89, 0x156e0baf, 0xb6053f87, 0x821232a4, 0x74c00eb8, 0x5d1a8074, 0x155a5b8f,
        0x1a69e91d, 0x58654f38, 0x4411f97a, 0xafde0f53, 0xbabf105d, 0xaa10b487, 0xd4aea2eb,
        0x476abd50, 0xfe22c675, 0x18c0f21c, 0xab512607, 0xfe146b94, 0x87d9476b, 0xd593193e,
        0xf19fd7af, 0x8721cfd7, 0xda9e8b52, 0xae26b188, 0x4f5759e9, 0x576b6984, 0x606e74d0,
        0x14118614, 0x2ff3cd30, 0xd555971f, 0x43a709f9, 0xcdd7a558, 0x70168900, 0xe2d45a2b,
        0x68f35b40, 0xa6860b1b, 0xb9d53bd0, 0x3a332fe6, 0x9ba93cd9, 0xf577550c, 0x0423a4a2,
        0x628a508c, 0x7c9ababf, 0x238221e5, 0xf2f00e18, 0xfbc86066, 0x7fde7d26, 0xc60e6c93,
        0x2e140860, 0x1b759959, 0x9e7b501c, 0x48de31a0, 0x5af3488b, 0x46ee7b84, 0x47ada970,
        0x13956b48, 0xc90c9341, 0x419532a4, 0xda92a24e, 0x2f60055c, 0x1ce0c6ab, 0xd4e05503,
        0xf1b575d4, 0x19e3e0f5, 0x468901eb, 0xd8c3c405, 0xedcbd760, 0x4f73eeac, 0x5c9090a2,
        0x5a159c7f, 0x19ae008e, 0x38a55c81, 0x3aa4fe4e, 0x9cc0a2f6, 0x201f595c, 0x1cd82091,
        0x4c983029, 0xe5b1e71a, 0xdbb7ce66, 0x0c998030, 0x6a13d685, 0x03c337bf, 0xaa275ee6,
        0x5c274204, 0x8837b983, 0x3600e6fa, 0xd181c66d, 0x48530dbb, 0xdf695172, 0x605eb4e6,
        0x7881b88e, 0x7abdc614, 0x1cd9e63d, 0x9fef6548, 0xcff45953, 0xbcc4b279, 0x8cc927b7,
        0xf1e76e3f, 0x78fcd3f8, 0xcd95da88, 0x28840da5, 0x85a8bd9a, 0x6bbb9b4c, 0x4941ff2a,
        0x0677584a, 0x7053d727, 0x4ed645d4, 0x2729bb96, 0xc38f42c6, 0xa03ee9f1, 0x43b218d1,
        0x5690b7c4, 0xf4831580, 0x92923649, 0x81a848ed, 0xa7ccca54, 0xa07ceaa7, 0x007c8dda,
        0x596d0356, 0xc8e263bc, 0x4388674b, 0x57a51fb4, 0xa315ab74, 0xce515885, 0xd8aee6d1,
        0x2c9ec403, 0x34627cee, 0xef21861a, 0x47910579, 0x81eeeb41, 0x0b9870a6, 0x8003b3fe,
        0x5892954d, 0x43b7128b, 0xb5a9b11a, 0xd587f739, 0xe5a346fe, 0x5f2170de, 0x25b413dd,
        0x92cf681c, 0xd1c0919b, 0xd4db9b68, 0x07c508b7, 0x0f1a79c3, 0x0f0d6163, 0x3dd33b4c,
        0x609d1e75, 0xcdfe329a, 0xcf3296a8, 0x0de93325, 0xd7e8fc2c, 0x40088f17, 0xb5f0e4cf,
        0x334a1fad, 0xc574177b, 0x309d22a5, 0x4aa35ebc, 0xbe6e3694, 0x3a16db86, 0x05f91908,
        0xcb8bcbe0, 0xfcb71e41, 0xe2992fdd, 0x016e6992, 0x302e3cf5, 0x74665180, 0xd771acd9,
        0xab766e83, 0xd9f0c031, 0xdb82b1f7, 0x989d7e00, 0xbf8f67ea, 0xbdfe367b, 0x5e1b5027,
        0x885e3873, 0x6a1e86b9, 0x71f8bc2b, 0x570d589e, 0x9aa235a8, 0x11df557f, 0x66549ce3,
        0x25bbf85b, 0xd844d35e, 0xce1f8829, 0x39fae6ee, 0x90ff27fd, 0xd7d4249e, 0xaddf2ea2,
        0xdcf63f67, 0x3902a4eb, 0x7a646c84, 0x95a0d98d, 0x149debd5, 0x3988103b, 0x6684fd52,
        0xf57dcf8a, 0x1476ad8c, 0x306b5901, 0x63d7d6ab, 0x38edca19, 0x4677c138, 0xfa0f9e92,
        0xfe896757, 0xa2656964, 0xc7713ab7, 0x650cf74e, 0xcf1030fb, 0xa4800924, 0x4f5b7b80,
        0x60ac2271, 0x248035b2, 0x0f6ff4f9, 0x39328f1e, 0x2ca351db, 0x8b125b72, 0x8158865c,
        0xca8348fa, 0x1f2898b5, 0x4421b56a, 0xb35f98fa, 0x694ec994, 0x93650f4e, 0x56c3c89c,
        0x3fcfd543, 0x3200a5f6, 0xc0897243, 0x23ba1cba, 0x763a50bd, 0x261f9e12, 0xc3dd0114,
        0xa2891d62, 0x9b5d87a6, 0x92d822be, 0x91581124, 0xdf1c3874, 0xf8087216, 0xaa915133,
        0x671d8dc4, 0x80fa6eff, 0x82c0c445, 0x35882760, 0xe85751c6, 0x14b412b7, 0x0bd579de,
        0x3224b493, 0x1c1554c6, 0xfbd71e05, 0xb4c2a98c, 0x85ee3966, 0xadcd3325, 0x8d1fa8a2,
        0xcfd6df1b, 0xb98e756b, 0x2e4ec3ac, 0xc6a0e1c2, 0x2f519d74, 0xd0f25ade, 0x638aabb2,
        0xa4f12a73, 0x35773b1c, 0xa404b463, 0x92e93468, 0x2f908a9e, 0x6a6dc30e, 0x1c57cef5,
        0xd4cb5692, 0xf98e675c, 0x4032fbbd, 0xb76d00bb, 0x2fb0e12c, 0xfa4071ed, 0xb6d17702,
        0xd6e84a6a, 0xe346665f, 0x1ca5524b, 0x0b15d23d, 0x3bba44fd, 0x44930063, 0x825a9515,
        0x65fa2b44, 0x25cb214a, 0x3cf70c44, 0xa6a9fd97, 0x01ac2b86, 0xc7283b85, 0x9ac6a49e,
    ];
    const XXH3_PATTERN: [u32; 301] = [
        0x38d394c2, 0xd0f4811f, 0xcbfa4e6e, 0xe61106ac, 0x3443d03f, 0x11280b63, 0xab99dd4e,
        0xd51fe43f, 0xb04d78f5, 0x12c26edf, 0xca37d745, 0x15e2dbf9, 0x4dc2ee45, 0x972b0623,
        0xc5261bbf, 0x698ba575, 0xccea0858, 0x5022d071, 0xad22d303, 0x6844e812, 0xcec6c464,
        0x4d65e6c8, 0xa37ffa1a, 0xb07c482b, 0x964ba200, 0x9a525bc0, 0x73fd1632, 0x2b9174af,
        0x1fba0602, 0x881d852b, 0x501d074b, 0x5518b086, 0x4c04a66e, 0x093e1f73, 0x6cb96c80,
        0xe5f81a33, 0xad7c5d5c, 0x8dc93f0e, 0xf038cd24, 0xcf0c9c06, 0x559c44a8, 0xd8d34bbf,
        0x5d1fdd85, 0x9792190b, 0xd5c075ca, 0xc87be825, 0x7a8f2110, 0xa8863656, 0x06ae1e99,
        0x09b32cf1, 0x9dcfdfef, 0x36c1cc33, 0x93c140e7, 0xbce7d0bc, 0xfaa6eaa8, 0x44ecaf7f,
        0x8995d180, 0x30fc4942, 0xb34cbf23, 0x1ba35649, 0x9478cb16, 0xc283123e, 0x8b87cd4c,
        0x3dcc223b, 0x042330dd, 0x217e5ec9, 0x26e88b2c, 0x80294c6b, 0xc4ff4c00, 0xbe08096d,
        0x1614168c, 0x1d815bec, 0x6d81c357, 0x6dd75481, 0x8e08cb19, 0x0a977bf7, 0x9ba3b010,
        0x9acd07a6, 0x341f5439, 0xdf52fc65, 0xf16b1ed6, 0xc88094f4, 0x471b37ad, 0x47e0d586,
        0x689bdc7c, 0x2c113c31, 0xc27695da, 0x6539d8cb, 0xf7a065f5, 0xd5244d32, 0x93e64b41,
        0x1e06bc12, 0x4b3d1f90, 0x29a6bcb6, 0x54fbaebf, 0x70f3868d, 0xfc063365, 0x658ab9dd,
        0x2f864045, 0x64692adf, 0x6d4093d5, 0x6a510a87, 0xd1372ac9, 0x9f4d3b56, 0xf10969a3,
        0xc40a8689, 0x0af3acae, 0x5e563f98, 0xacf5758a, 0x8875ab73, 0xe72ceb03, 0x45924799,
        0xcf40bb90, 0xa00fe887, 0x5a16d10b, 0x716b1fd5, 0xd71ab4ba, 0x10be4318, 0x7b4933fa,
        0x60c29348, 0xa8598177, 0x4654ce4e, 0xc4650a01, 0x5216a96f, 0x75900d62, 0x7b30761b,
        0x7636349a, 0x04020db5, 0xc0ccba41, 0xdb49d1a2, 0x5fa96def, 0x88307280, 0x6efa023a,
        0x4b0fbb6b, 0xccb8742c, 0x57070ffb, 0xe3afe8a7, 0x4de1d87d, 0x1cd7470f, 0x5663cf18,
        0x2d959c7a, 0x6b59d059, 0xc0b59733, 0x8f7f87b3, 0xd9e31aba, 0x35384cfb, 0x9dc6bc69,
        0xf2ae5983, 0x3da3c08d, 0x12b3850c, 0x97034f04, 0xa4b109f9, 0xf656fa71, 0x03534917,
        0x01d4e8fb, 0x4ab43283, 0x57606e75, 0xc5e46ae4, 0x4083e9e4, 0xe0d5ee0e, 0x3b4b4c4a,
        0x7a00d651, 0xac1abf99, 0x49a1676f, 0x26549cbb, 0x70c24bc9, 0x6ae12d78, 0x17c51988,
        0xb4654d8a, 0x5896233e, 0x1a2ecadd, 0x10596b7d, 0x672562e2, 0xbe8939c2, 0xf28e2fcc,
        0x31655453, 0xeeec47d2, 0x3e7e3b44, 0x5bf05591, 0xd78b089e, 0x41b632bb, 0xfb12fb41,
        0xf96e6957, 0xbb3c0f4c, 0x4cbd8848, 0x13b5c30a, 0xc0f29d5d, 0xff89e65d, 0x1360823a,
        0x0ca525f7, 0x7f8d5244, 0xdd65c517, 0xdc7d5e36, 0xbc817674, 0x2e0a6a2f, 0x48129625,
        0x7b7a33b3, 0x2e058426, 0x80d0ab6d, 0xf532d7b7, 0xe181c826, 0x265541a1, 0x3b9f8c61,
        0xfe445bdc, 0x9b4650fe, 0xb34e7587, 0x82d6dc5d, 0x4f562e5e, 0x3c5ecd6c, 0x8ffe45c8,
        0x8fac0280, 0x9f5e9fee, 0xf1616366, 0xfadf85a3, 0xf8d14d19, 0x622f1d46, 0xa79689d7,
        0x3fbb72b3, 0x557ccdd7, 0xbcbea164, 0x7b06a870, 0x7e79b485, 0x5cd8059f, 0x30cfbecb,
        0xc6b07f0d, 0x360f1791, 0xc4d8dd78, 0x53d21427, 0x3bc61cb0, 0x6c274d76, 0x25d84ec9,
        0xc737c17e, 0x0f2440eb, 0xf82b3ffd, 0x3f8bcfd6, 0x32b4e6b6, 0xdadfadcb, 0x835d4a66,
        0xeacf3179, 0x9adb16cd, 0x3fab81e6, 0x2c67279e, 0xc36cba83, 0xab931ce7, 0x46b7dd53,
        0x42f9e3ea, 0x6e64fa6b, 0xad27e796, 0x6d0c396d, 0xeee65a4c, 0xfe2f84b9, 0x94a2b7f6,
        0xa063e1f5, 0xc3dc7429, 0xffe53233, 0x25eb7929, 0x33c5dfac, 0x941cf085, 0x34db28a0,
        0x08a0cc8a, 0x8f5111fd, 0xb0dd4ba7, 0xcd8d4f14, 0xa0736460, 0x7e3ed009, 0xb1c4a799,
        0x35c712d4, 0x265db683, 0xb8b96a37, 0x1a457125, 0x917d8de3, 0x0da25b8c, 0x0bb7ce6b,
        0x62006916, 0x0198e5ec, 0x345aa64c, 0xc0a7a4bc, 0x3425648a, 0xb8541d5b, 0x9b22730c,
        0x04378bfc, 0xb7b5d687, 0x4b102b21, 0x679c0240, 0xa537c8c3, 0xb3d66ad8, 0x7664ac60,
        0xcff598f5, 0x31cdb113, 0x5250a1cf, 0xea0fc1ee, 0xe6c2c4ba, 0x3508323f, 0x5fb4055c,
        0x808c0671, 0x6b17eefa, 0x3c1b3e90, 0x0f88a9c6, 0xe4365cac, 0x3add3fbf, 0xccce75ce,
    ];
    const LONG: [(usize, u32, u32, u32); 15] = [
        (511, 0x93bde89a, 0x40807d7d, 0x4907228a),
        (512, 0x94486a24, 0xdb4f7b12, 0xb93990d7),
        (1023, 0x731b4e72, 0xecbbfdb7, 0x254368e4),
        (1024, 0x57f2b057, 0x15a8f2da, 0x9574f4bb),
        (1025, 0x9ad8f044, 0x2415d076, 0x41e127a7),
        (1087, 0x906a8ec0, 0xe25b0ba9, 0x0f73973f),
        (1088, 0x5fd12dbe, 0xfa4e307b, 0x28a9acbc),
        (1089, 0xb78550cd, 0x9b169d04, 0x32bbfa2e),
        (2047, 0xa14e933e, 0xb4679082, 0xa1510c6a),
        (2048, 0x7bfb88f4, 0x40bd6994, 0x7dab3a30),
        (2049, 0xe3bb4268, 0x9089960a, 0xfd9b76c5),
        (3000, 0x838cb27c, 0x6e1ecf6a, 0xbba03e0c),
        (4096, 0x759a76d8, 0x0fd9358d, 0x4af0daff),
        (5000, 0xb7ed728c, 0x53383f4c, 0x540f095c),
        (9999, 0xe3b08a72, 0x93053460, 0x3d913c27),
    ];
    const TEXT: [(&str, u32, u32, u32); 17] = [
        ("foo", 0xf6a5c420, 0xe18f6896, 0x077e7d8a),
        ("bar", 0x450e998d, 0xa6c2ceb8, 0xa032d362),
        ("a", 0x3c2569b2, 0x58d68708, 0x1e964e1f),
        ("key:12345", 0xa6a5f94f, 0xbf775e53, 0x4c622295),
        ("key:0", 0x932b138b, 0x979a84ac, 0x63344e80),
        ("user:1000:profile", 0x5be70f3b, 0xc99149fe, 0x2ea288c9),
        ("memcached", 0x784f2b61, 0xaf1b272e, 0xa01f8644),
        ("hello world", 0x5e928f0f, 0x4aa94e65, 0x40e6988b),
        ("ab", 0x9bbfd75f, 0xfbb3a8df, 0x24d5735c),
        ("abc", 0xb3dd93fa, 0x0e397631, 0x892f3950),
        ("abcd", 0x43ed676a, 0xb5f4889c, 0x53a89890),
        ("abcdefgh", 0x49ddccc4, 0x2995c3be, 0x42a96483),
        ("abcdefghi", 0x421406f0, 0xac6572b4, 0x174590a0),
        ("abcdefghijklmnop", 0xe76291ed, 0x11347272, 0xaf14d8a8),
        ("abcdefghijklmnopq", 0xb6655e4a, 0x8938634e, 0xdf47cacf),
        ("a*250", 0xb0716db0, 0xea904363, 0x4912f523),
        ("digits*250", 0x7fa8ba50, 0x6bb078e3, 0x0b9b7d9e),
    ];

    fn check(name: &str, f: fn(&[u8]) -> u32, key: &[u8], want: u32) {
        let got = f(key);
        assert_eq!(
            got,
            want,
            "{name} len {}: got {got:#010x} want {want:#010x}",
            key.len()
        );
    }

    #[test]
    fn hash_pattern_lengths_0_to_300() {
        let key = pattern(300);
        for len in 0..=300 {
            check("murmur3", murmur3_32, &key[..len], MURMUR3_PATTERN[len]);
            check("jenkins", jenkins_32, &key[..len], JENKINS_PATTERN[len]);
            check("xxh3", xxh3_32, &key[..len], XXH3_PATTERN[len]);
        }
    }

    #[test]
    fn hash_long_keys() {
        let key = pattern(10_000);
        for &(len, m, j, x) in LONG.iter() {
            check("murmur3", murmur3_32, &key[..len], m);
            check("jenkins", jenkins_32, &key[..len], j);
            check("xxh3", xxh3_32, &key[..len], x);
        }
    }

    #[test]
    fn hash_text_keys() {
        for &(name, m, j, x) in TEXT.iter() {
            let key: Vec<u8> = match name {
                "a*250" => vec![b'a'; 250],
                "digits*250" => (0..250).map(|i| b'0' + (i % 10) as u8).collect(),
                s => s.as_bytes().to_vec(),
            };
            check("murmur3", murmur3_32, &key, m);
            check("jenkins", jenkins_32, &key, j);
            check("xxh3", xxh3_32, &key, x);
        }
    }

    /// Every length 0..=4200 of two byte patterns, folded as `d = d * 31 ^ hash` (u32, wrapping);
    /// the expected digests come from the same fold over the C functions.
    #[test]
    fn hash_digest_lengths_0_to_4200() {
        let by_pos: Vec<u8> = pattern(4200);
        let by_mul: Vec<u8> = (0..4200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let cases: [(&[u8], [u32; 3]); 2] = [
            (&by_pos, [0xc2519156, 0x627aa35a, 0x3277c624]),
            (&by_mul, [0xe9d18c9c, 0x20661175, 0x644eb01d]),
        ];
        for (src, want) in cases {
            let fns: [fn(&[u8]) -> u32; 3] = [murmur3_32, jenkins_32, xxh3_32];
            for (f, want) in fns.into_iter().zip(want) {
                let d = (0..=src.len()).fold(0u32, |d, n| d.wrapping_mul(31) ^ f(&src[..n]));
                assert_eq!(d, want, "digest {d:#010x} want {want:#010x}");
            }
        }
    }

    #[test]
    fn hash_xxh3_64_known_vectors() {
        // Published XXH3_64bits values (seed 0).
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn hash_fn_selects_algorithm() {
        let k = b"key:12345";
        assert_eq!(hash_fn(HashAlgorithm::Murmur3)(k), murmur3_32(k));
        assert_eq!(hash_fn(HashAlgorithm::Jenkins)(k), jenkins_32(k));
        assert_eq!(hash_fn(HashAlgorithm::Xxh3)(k), xxh3_32(k));
    }

    #[test]
    fn hash_any_length_and_offset_no_panic() {
        let buf = pattern(2048 + 8);
        for len in 0..=2048 {
            for off in [0, 1, 3] {
                let k = &buf[off..off + len];
                let _ = (murmur3_32(k), jenkins_32(k), xxh3_32(k));
            }
        }
    }
}
