//! Which shard a tenant lives on, in a sharded deployment (`forgeerp_proxy`,
//! `docs/API.md` "Sharded deployment"): the tenant uuid's first 32 bits,
//! big-endian, masked by the shard count, a power of two. The proxy's
//! `forgeerp.shard_of` computes the same (as PL/Proxy's `int4` hash and
//! mask); no PostgreSQL hash function is involved, so no server version can
//! move a tenant.

/// The shard of the tenant with these uuid bytes among `shards` (a power of
/// two), or None when `shards` is not one.
pub fn shard_of(tenant: &[u8; 16], shards: u32) -> Option<u32> {
    if !shards.is_power_of_two() {
        return None;
    }
    let hash = u32::from_be_bytes([tenant[0], tenant[1], tenant[2], tenant[3]]);
    Some(hash & (shards - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_32_bits_masked_by_the_shard_count() {
        let mut tenant = [0u8; 16];
        tenant[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(shard_of(&tenant, 1), Some(0));
        assert_eq!(shard_of(&tenant, 2), Some(1));
        assert_eq!(shard_of(&tenant, 16), Some(0xf));
        assert_eq!(shard_of(&tenant, 1 << 20), Some(0xd_beef));
        // The bytes after the fourth never matter.
        tenant[4..].fill(0xff);
        assert_eq!(shard_of(&tenant, 16), Some(0xf));
        assert_eq!(shard_of(&tenant, 3), None);
        assert_eq!(shard_of(&tenant, 0), None);
    }
}
