//! Reed-Solomon erasure coding of file pieces (docs/PROTOCOL.md, `kez-file-v2`), a thin
//! layer over `reed-solomon-simd` (Leopard-RS, GF(2^16)): `k` source pieces give `n - k`
//! recovery pieces, and any `k` distinct pieces of the `n` give back the source.
//!
//! Piece `i < k` is source piece `i`, untouched (the code is systematic); piece `k + j` is
//! recovery piece `j`. On wasm32 the same two operations are exported with a C ABI, so the
//! web app loads this as a plain WebAssembly module with no glue code.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Why coding failed (bad parameters or pieces); the web app only needs "it failed".
#[derive(Debug, PartialEq, Eq)]
pub enum CodingError {
    /// Counts or piece size the code does not support.
    Parameters,
    /// Fewer than `k` distinct, in-range pieces.
    NotEnoughPieces,
}

/// `n - k`; `n == k` (no redundancy, one relay) is allowed and codes nothing.
fn recovery_count(k: usize, n: usize) -> Result<usize, CodingError> {
    if k == 0 || n < k || (n > k && !ReedSolomonEncoder::supports(k, n - k)) {
        return Err(CodingError::Parameters);
    }
    Ok(n - k)
}

/// The `n - k` recovery pieces, concatenated, for `source` (`k` pieces of `piece_bytes`).
pub fn encode(k: usize, n: usize, piece_bytes: usize, source: &[u8]) -> Result<Vec<u8>, CodingError> {
    let m = recovery_count(k, n)?;
    if piece_bytes == 0 || piece_bytes % 2 != 0 || source.len() != k * piece_bytes {
        return Err(CodingError::Parameters);
    }
    if m == 0 {
        return Ok(Vec::new());
    }
    let mut encoder = ReedSolomonEncoder::new(k, m, piece_bytes).map_err(|_| CodingError::Parameters)?;
    for piece in source.chunks_exact(piece_bytes) {
        encoder.add_original_shard(piece).map_err(|_| CodingError::Parameters)?;
    }
    let result = encoder.encode().map_err(|_| CodingError::Parameters)?;
    let mut out = Vec::with_capacity(m * piece_bytes);
    for piece in result.recovery_iter() {
        out.extend_from_slice(piece);
    }
    Ok(out)
}

/// The `k` source pieces, concatenated, rebuilt from `pieces` (index, bytes): the first `k`
/// distinct indices below `n` are used, further ones ignored.
pub fn decode(k: usize, n: usize, piece_bytes: usize, pieces: &[(usize, &[u8])]) -> Result<Vec<u8>, CodingError> {
    let m = recovery_count(k, n)?;
    if piece_bytes == 0 || piece_bytes % 2 != 0 || pieces.iter().any(|(_, p)| p.len() != piece_bytes) {
        return Err(CodingError::Parameters);
    }
    let mut have = vec![false; n];
    let mut chosen: Vec<(usize, &[u8])> = Vec::with_capacity(k);
    for &(i, piece) in pieces {
        if i < n && !have[i] && chosen.len() < k {
            have[i] = true;
            chosen.push((i, piece));
        }
    }
    if chosen.len() < k {
        return Err(CodingError::NotEnoughPieces);
    }
    let mut out = vec![0u8; k * piece_bytes];
    if chosen.iter().all(|&(i, _)| i < k) {
        // Every source piece is here: nothing to decode.
        for (i, piece) in chosen {
            out[i * piece_bytes..(i + 1) * piece_bytes].copy_from_slice(piece);
        }
        return Ok(out);
    }
    let mut decoder = ReedSolomonDecoder::new(k, m, piece_bytes).map_err(|_| CodingError::Parameters)?;
    for &(i, piece) in &chosen {
        let added = if i < k { decoder.add_original_shard(i, piece) } else { decoder.add_recovery_shard(i - k, piece) };
        added.map_err(|_| CodingError::Parameters)?;
        if i < k {
            out[i * piece_bytes..(i + 1) * piece_bytes].copy_from_slice(piece);
        }
    }
    let result = decoder.decode().map_err(|_| CodingError::NotEnoughPieces)?;
    for (i, piece) in result.restored_original_iter() {
        out[i * piece_bytes..(i + 1) * piece_bytes].copy_from_slice(piece);
    }
    Ok(out)
}

/// The C ABI the web app calls (`web/src/lib/erasure.ts`). Buffers live in this module's
/// memory: the caller allocates with `kez_alloc`, and frees what it allocated and every
/// result with `kez_free`. A result is `len: u32 (little-endian) || bytes`; 0 means failure.
#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::alloc::{alloc, dealloc, Layout};

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), 8).expect("small layout")
    }

    #[no_mangle]
    pub extern "C" fn kez_alloc(len: usize) -> *mut u8 {
        // SAFETY: the layout has a non-zero size.
        unsafe { alloc(layout(len)) }
    }

    /// # Safety
    /// `ptr` must come from `kez_alloc(len)` (or be a result whose total length is `len`).
    #[no_mangle]
    pub unsafe extern "C" fn kez_free(ptr: *mut u8, len: usize) {
        if !ptr.is_null() {
            dealloc(ptr, layout(len));
        }
    }

    fn result(bytes: Result<Vec<u8>, super::CodingError>) -> *mut u8 {
        let Ok(bytes) = bytes else { return std::ptr::null_mut() };
        let ptr = kez_alloc(4 + bytes.len());
        if ptr.is_null() {
            return ptr;
        }
        // SAFETY: ptr has room for 4 + len bytes.
        unsafe {
            std::ptr::copy_nonoverlapping((bytes.len() as u32).to_le_bytes().as_ptr(), ptr, 4);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.add(4), bytes.len());
        }
        ptr
    }

    /// # Safety
    /// `source` must point to `k * piece_bytes` readable bytes.
    #[no_mangle]
    pub unsafe extern "C" fn kez_rs_encode(k: usize, n: usize, piece_bytes: usize, source: *const u8) -> *mut u8 {
        let Some(len) = k.checked_mul(piece_bytes) else { return std::ptr::null_mut() };
        result(super::encode(k, n, piece_bytes, std::slice::from_raw_parts(source, len)))
    }

    /// # Safety
    /// `indices` must point to `count` u32 piece indices and `pieces` to `count * piece_bytes`
    /// bytes, piece `j` of which has index `indices[j]`.
    #[no_mangle]
    pub unsafe extern "C" fn kez_rs_decode(
        k: usize,
        n: usize,
        piece_bytes: usize,
        count: usize,
        indices: *const u32,
        pieces: *const u8,
    ) -> *mut u8 {
        let Some(len) = count.checked_mul(piece_bytes) else { return std::ptr::null_mut() };
        let indices = std::slice::from_raw_parts(indices, count);
        let bytes = std::slice::from_raw_parts(pieces, len);
        let pieces: Vec<(usize, &[u8])> =
            indices.iter().zip(bytes.chunks_exact(piece_bytes.max(1))).map(|(&i, p)| (i as usize, p)).collect();
        result(super::decode(k, n, piece_bytes, &pieces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(k: usize, piece_bytes: usize) -> Vec<u8> {
        (0..k * piece_bytes).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    fn all_pieces(k: usize, n: usize, piece_bytes: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let data = source(k, piece_bytes);
        let recovery = encode(k, n, piece_bytes, &data).unwrap();
        let pieces = data.chunks(piece_bytes).chain(recovery.chunks(piece_bytes)).map(<[u8]>::to_vec).collect();
        (data, pieces)
    }

    #[test]
    fn any_k_pieces_rebuild_the_source() {
        let (k, n, piece_bytes) = (6, 10, 64);
        let (data, pieces) = all_pieces(k, n, piece_bytes);
        // Every window of k consecutive indices, wrapping: all-source, all-recovery and mixes.
        for start in 0..n {
            let chosen: Vec<(usize, &[u8])> =
                (0..k).map(|j| (start + j) % n).map(|i| (i, pieces[i].as_slice())).collect();
            assert_eq!(decode(k, n, piece_bytes, &chosen).unwrap(), data, "start {start}");
        }
    }

    #[test]
    fn the_code_is_systematic() {
        let (data, pieces) = all_pieces(3, 5, 8);
        assert_eq!(pieces[..3].concat(), data);
    }

    #[test]
    fn duplicates_and_out_of_range_indices_do_not_count() {
        let (k, n, piece_bytes) = (3, 5, 8);
        let (data, pieces) = all_pieces(k, n, piece_bytes);
        let dup = [(4, pieces[4].as_slice()), (4, pieces[4].as_slice()), (9, pieces[0].as_slice()), (1, pieces[1].as_slice())];
        assert_eq!(decode(k, n, piece_bytes, &dup), Err(CodingError::NotEnoughPieces));
        let enough = [dup.as_slice(), &[(3, pieces[3].as_slice())]].concat();
        assert_eq!(decode(k, n, piece_bytes, &enough).unwrap(), data);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let data = source(2, 8);
        assert_eq!(encode(2, 1, 8, &data), Err(CodingError::Parameters)); // n below k
        assert_eq!(encode(2, 2, 8, &data), Ok(Vec::new())); // no redundancy: nothing to code
        assert_eq!(encode(2, 3, 7, &source(2, 7)), Err(CodingError::Parameters)); // odd size
        assert_eq!(encode(2, 3, 8, &data[1..]), Err(CodingError::Parameters)); // short source
        assert_eq!(encode(0, 3, 8, &[]), Err(CodingError::Parameters));
        let short = [(0, &data[..6])];
        assert_eq!(decode(2, 3, 8, &short), Err(CodingError::Parameters)); // piece of the wrong size
    }

    #[test]
    fn a_realistic_file_survives_the_loss_of_two_relays_shares() {
        // 5 MB in 48,000-byte pieces, striped over 5 relays round-robin; relays 1 and 3 lost.
        let (k, piece_bytes): (usize, usize) = (110, 48_000);
        let n = 5 * k.div_ceil(3);
        let (data, pieces) = all_pieces(k, n, piece_bytes);
        let kept: Vec<(usize, &[u8])> =
            (0..n).filter(|i| i % 5 != 1 && i % 5 != 3).map(|i| (i, pieces[i].as_slice())).collect();
        assert!(kept.len() >= k);
        assert_eq!(decode(k, n, piece_bytes, &kept).unwrap(), data);
    }
}
