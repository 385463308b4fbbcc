//! Murmur3 partitioner tokens (R1.1, R1.2).
//!
//! A partition's position on the ring is its [`Token`]: the first 64-bit half of
//! `MurmurHash3_x64_128(legacy_form(pk), seed = 0)`, reinterpreted as a signed `i64`, with
//! `i64::MIN` coerced to `i64::MAX` (R1.1). The hash is Cassandra's variant of MurmurHash3, which
//! differs from the textbook algorithm in the 1..15-byte tail: tail bytes are read as *signed*
//! bytes and sign-extended before they are shifted into place (R1.2). Keys whose tail contains a
//! byte `>= 0x80` therefore hash differently from the reference C++ implementation.
//!
//! Thread-safety: pure functions and plain data, `Send + Sync`.

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Reads the 8 bytes at `block[at..at + 8]` as an unsigned little-endian `u64`.
#[inline]
fn le_u64(block: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(src) = block.get(at..at + 8) {
        word.copy_from_slice(src);
    }
    u64::from_le_bytes(word)
}

/// A tail byte as Cassandra reads it (R1.2): signed, sign-extended to 64 bits.
#[inline]
fn signed_tail(byte: u8) -> u64 {
    i64::from(byte as i8) as u64
}

/// Cassandra's `MurmurHash3_x64_128` of `data` with `seed`, returned as `[h1, h2]`.
///
/// The 16-byte body blocks are read as unsigned little-endian `u64`s; the 1..15-byte tail is read
/// with Cassandra's quirk (R1.2): each tail byte is a *signed* byte, sign-extended to 64 bits
/// before being shifted (`k ^= (i8 as i64 as u64) << s`).
pub fn murmur3_x64_128(data: &[u8], seed: u64) -> [u64; 2] {
    let mut h1 = seed;
    let mut h2 = seed;

    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let mut k1 = le_u64(block, 0);
        let mut k2 = le_u64(block, 8);

        k1 = k1.wrapping_mul(C1);
        k1 = k1.rotate_left(31);
        k1 = k1.wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27);
        h1 = h1.wrapping_add(h2);
        h1 = h1.wrapping_mul(5).wrapping_add(0x52dc_e729);

        k2 = k2.wrapping_mul(C2);
        k2 = k2.rotate_left(33);
        k2 = k2.wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31);
        h2 = h2.wrapping_add(h1);
        h2 = h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }

    // R1.2: the tail bytes are signed and sign-extended before shifting. XOR-ing the sign-extended
    // bytes from the highest index down to the lowest, as Cassandra's fall-through switch does,
    // lets a negative low byte overwrite (flip) the high bits contributed by the bytes above it.
    let tail = blocks.remainder();
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    for i in (8..tail.len()).rev() {
        k2 ^= signed_tail(tail[i]) << ((i - 8) * 8);
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2);
        k2 = k2.rotate_left(33);
        k2 = k2.wrapping_mul(C1);
        h2 ^= k2;
    }
    for i in (0..tail.len().min(8)).rev() {
        k1 ^= signed_tail(tail[i]) << (i * 8);
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1);
        k1 = k1.rotate_left(31);
        k1 = k1.wrapping_mul(C2);
        h1 ^= k1;
    }

    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    [h1, h2]
}

/// A Murmur3 partitioner token: a signed position on the ring.
///
/// Tokens order as signed `i64` (R1.5). A real key never has the token `i64::MIN` (R1.1), so
/// [`Token::MIN`] sorts strictly before every key's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub i64);

impl Token {
    /// The minimum token, `i64::MIN`. It is reserved (R1.1): no partition key hashes to it, so it
    /// sorts strictly before every key's token and can serve as an exclusive lower bound.
    pub const MIN: Token = Token(i64::MIN);

    /// The maximum token, `i64::MAX`. Keys *can* have this token: it is both a natural hash value
    /// and the value that `i64::MIN` hashes are coerced to (R1.1).
    pub const MAX: Token = Token(i64::MAX);

    /// The token of a partition key given in its legacy form (R1.3): `h1` of
    /// `murmur3_x64_128(legacy_form, 0)` as an `i64`, with `i64::MIN` coerced to `i64::MAX`
    /// (R1.1). An empty key hashes to a real token, as in ScyllaDB (R1.4).
    pub fn of(legacy_form: &[u8]) -> Token {
        // R1.1: first half of the hash, reinterpreted as signed.
        let h1 = murmur3_x64_128(legacy_form, 0)[0] as i64;
        if h1 == i64::MIN {
            // R1.1: i64::MIN is reserved for the minimum token.
            Token(i64::MAX)
        } else {
            Token(h1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Legacy form of a composite partition key (R1.3): `be16 len | bytes | 0x00` per component.
    fn composite(components: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in components {
            out.extend_from_slice(&(c.len() as u16).to_be_bytes());
            out.extend_from_slice(c);
            out.push(0);
        }
        out
    }

    /// Source: scylladb/scylladb, test/boost/partitioner_test.cc,
    /// `test_decorated_key_is_compatible_with_origin` ("Expected value was taken from Origin", i.e.
    /// Cassandra): partition key (c1 int, c2 int) = (143, 234) has token 4958784316840156970.
    ///
    /// The legacy form is 14 bytes (`00 04 00 00 00 8f 00 00 04 00 00 00 ea 00`): no full block,
    /// only a tail, and the tail holds 0x8f (k1 half) and 0xea (k2 half), both >= 0x80, so this
    /// vector exercises the R1.2 sign-extension quirk in both halves.
    #[test]
    fn scylla_composite_int_key_origin_vector() {
        let key = composite(&[&143i32.to_be_bytes(), &234i32.to_be_bytes()]);
        assert_eq!(key.len(), 14);
        assert_eq!(Token::of(&key), Token(4_958_784_316_840_156_970));
    }

    /// Source: scylladb/scylla-rust-driver, scylla/src/routing/partitioner.rs,
    /// `test_murmur3_partitioner` (single-column text keys; legacy form = UTF-8 bytes).
    /// "kremówki" is 9 bytes (`6b 72 65 6d c3 b3 77 6b 69`): a tail-only key with 0xc3 and 0xb3
    /// in the tail (R1.2 sign extension) and one byte in the k2 half.
    #[test]
    fn scylla_driver_text_key_vectors() {
        let vectors: [(&str, i64); 4] = [
            ("test", -6_017_608_668_500_074_083),
            ("xd", 4_507_812_186_440_344_727),
            ("primary_key", -1_632_642_444_691_073_360),
            ("kremówki", 4_354_931_215_268_080_151),
        ];
        for (key, token) in vectors {
            assert_eq!(Token::of(key.as_bytes()), Token(token), "key {key:?}");
        }
        assert_eq!("kremówki".len(), 9);
    }

    /// Source: apache/cassandra-dtest, replication_test.py, `murmur3_hashes` ("pre-computed murmur
    /// 3 hashes" of `id int PRIMARY KEY` values; legacy form = 4-byte big-endian int).
    /// The tokens of ints 1..=6 also appear as per-row comments in Cassandra's SAI vector tests.
    #[test]
    fn cassandra_dtest_int_key_vectors() {
        let vectors: [(i32, i64); 20] = [
            (5, -7_509_452_495_886_106_294),
            (10, -6_715_243_485_458_697_746),
            (16, -5_477_287_129_830_487_822),
            (13, -5_034_495_173_465_742_853),
            (11, -4_156_302_194_539_278_891),
            (1, -4_069_959_284_402_364_209),
            (19, -3_974_532_302_236_993_209),
            (8, -3_799_847_372_828_181_882),
            (2, -3_248_873_570_005_575_792),
            (4, -2_729_420_104_000_364_805),
            (18, -2_695_747_960_476_065_067),
            (15, -1_191_135_763_843_456_182),
            (20, 1_388_667_306_199_997_068),
            (7, 1_634_052_884_888_577_606),
            (6, 2_705_480_034_054_113_608),
            (9, 3_728_482_343_045_213_994),
            (14, 4_279_681_877_540_623_768),
            (17, 5_467_144_456_125_416_399),
            (12, 8_582_886_034_424_406_875),
            (3, 9_010_454_139_840_013_625),
        ];
        for (key, token) in vectors {
            assert_eq!(Token::of(&key.to_be_bytes()), Token(token), "int key {key}");
        }
    }

    /// Source: scylladb/scylladb, test/boost/murmur_hash_test.cc, `prefix_hashes`: full 128-bit
    /// `hash3_x64_128` outputs, seed 0xcafebabe, for every prefix (lengths 0..=59) of the ASCII
    /// string below. Covers every tail length 0..=15 with 0..=3 preceding 16-byte body blocks
    /// (all bytes < 0x80, so these check the body and tail layout, not R1.2's sign extension).
    #[test]
    fn scylla_prefix_hash_vectors_seeded() {
        const FULL: &[u8] = b"012345678901234567890123456789012345678901234567890123456789";
        const EXPECTED: [[u64; 2]; 60] = [
            [13907055927958326333, 10701141902926764871],
            [16872847325129109440, 5125572542408278394],
            [11916219991241122015, 747256650753853469],
            [1492790099208671403, 16635411534431524239],
            [16764172998150925140, 7440789969466348974],
            [6846275695158209935, 11251493995290334439],
            [1075204625779168927, 3453614304122336174],
            [1404180555660983881, 13684781009779545989],
            [10185829608361057848, 1102754042417891721],
            [12850382803381855486, 7404649381971707328],
            [972515366528881960, 4507841639019527002],
            [9279316204399455969, 9712180353841837616],
            [16558181491899334208, 17507114537353308311],
            [12977947643557220239, 8334539845739718010],
            [3743840537387886281, 15297576726012815871],
            [10675210326497176757, 11200838847539594424],
            [16363715880225337291, 2866762944263215884],
            [1272769995400892137, 1744366104172354624],
            [17426490373034063702, 12666853004117709655],
            [10757142341798556363, 3984810732374497004],
            [4593020710048021108, 14359610319437287264],
            [18212086870806388719, 7490375939640747191],
            [11209001888824275013, 6491913312740217486],
            [17601044365330203914, 1779402119744049378],
            [3916812090790925532, 17533572508631620015],
            [10113761195332211536, 4163484992388084181],
            [4353425943622404193, 1830165015196477722],
            [3904126367597302219, 7917741892387588561],
            [7077450301176172141, 8070185570157969067],
            [6331768922468785771, 9311778359071820659],
            [7715740891587706229, 16510772505395753023],
            [4510384582422222090, 9352450339278885986],
            [6746132289648898302, 15402380546251654069],
            [1315904697672087497, 2686857386486814319],
            [16122226135709041149, 1278536837434550412],
            [6449104926034509627, 8809488279970194649],
            [9047965986959166273, 14963749820458851455],
            [18095596803119563681, 2806499127062067052],
            [545238237267145238, 4583663570136224396],
            [12335897404061220746, 8643308333771385742],
            [15016951849151361171, 13012972687708005422],
            [12896848725136832414, 9881710852371170521],
            [17900663530283054991, 9606960248070178723],
            [4513619521783122834, 4823611535250518791],
            [15572858348470724038, 4882998878774456634],
            [3464540909110937960, 14591983318346304410],
            [2951301498066556278, 3029976006973164807],
            [7848995488883197496, 10621954303326018594],
            [5702723040652442467, 11325339470689059424],
            [870698890980252409, 8294946103885186165],
            [423348447487367835, 4067674294039261619],
            [397951862030142664, 17073640849499096681],
            [9374556141781683538, 10333311062251856416],
            [1097707041202763764, 2870200096551238743],
            [11493051326088411054, 12348796263566330575],
            [15865059192259516415, 4808544582161036476],
            [2717981543414886593, 5944564527643476706],
            [887521262173735642, 3558550013200985442],
            [9496424291456600748, 9845949835154361896],
            [1589012859535948937, 7402826160257180747],
        ];
        for (len, expected) in EXPECTED.iter().enumerate() {
            assert_eq!(murmur3_x64_128(&FULL[..len], 0xcafe_babe), *expected, "prefix of length {len}");
        }
    }

    /// R1.2: a textbook (unsigned-tail) MurmurHash3 would differ on keys with a tail byte >= 0x80;
    /// check that our hash is *not* the unsigned variant for such a key, and is for ASCII keys.
    #[test]
    fn tail_sign_extension_matters() {
        fn unsigned_tail_h1(data: &[u8]) -> u64 {
            // Same algorithm, but a tail-only key with zero-extended bytes.
            let mut k1: u64 = 0;
            for (i, b) in data.iter().enumerate().take(8) {
                k1 ^= u64::from(*b) << (i * 8);
            }
            k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
            let (mut h1, mut h2) = (k1, 0u64);
            h1 ^= data.len() as u64;
            h2 ^= data.len() as u64;
            h1 = h1.wrapping_add(h2);
            h2 = h2.wrapping_add(h1);
            h1 = fmix64(h1);
            h2 = fmix64(h2);
            h1.wrapping_add(h2)
        }
        assert_eq!(unsigned_tail_h1(b"test"), murmur3_x64_128(b"test", 0)[0]);
        let high = [0x00, 0x80, 0x01];
        assert_ne!(unsigned_tail_h1(&high), murmur3_x64_128(&high, 0)[0]);
    }

    /// R1.1: the reserved minimum token sorts before every key token; MAX is a valid key token.
    /// (No published key hashing to i64::MIN was found, so the coercion itself is checked only by
    /// construction in `Token::of`.)
    #[test]
    fn min_max_tokens() {
        assert_eq!(Token::MIN, Token(i64::MIN));
        assert_eq!(Token::MAX, Token(i64::MAX));
        assert!(Token::MIN < Token::of(b""));
        assert!(Token::of(b"") <= Token::MAX);
        // R1.4 (S): the empty key hashes to a real token (h1 of the empty input is 0).
        assert_eq!(Token::of(b""), Token(0));
    }
}
