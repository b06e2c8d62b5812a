use super::*;

fn header(name: &str, kind: u8, size: &[u8]) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name.as_bytes());
    b[100..108].copy_from_slice(b"0000755\0");
    b[124..124 + size.len()].copy_from_slice(size);
    b[136..148].copy_from_slice(b"13000000000\0");
    b[156] = kind;
    b[257..265].copy_from_slice(b"ustar\x0000");
    write_checksum(&mut b);
    b
}

fn through(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    Framing::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn a_header_only_entry_loses_its_size_and_the_data_is_read_as_headers() {
    let mut tar = header("dir/", b'5', b"00000001000\0").to_vec();
    tar.extend_from_slice(&header("notes.tar", b'0', b"00000000005\0"));
    tar.extend_from_slice(&[b'x'; BLOCK]);
    tar.extend_from_slice(&[0; 2 * BLOCK]);
    let out = through(&tar).unwrap();
    assert_eq!(out.len(), tar.len());
    assert_eq!(&out[124..136], b"00000000000\0");
    assert!(checksum_ok(out[..BLOCK].try_into().unwrap()));
    // Everything after the first header is handed on as it was.
    assert_eq!(out[BLOCK..], tar[BLOCK..]);
}

#[test]
fn a_signed_checksum_is_accepted_and_rewritten_unsigned() {
    let mut b = header("caf\u{e9}", b'0', b"00000000000\0");
    // A name byte over 0x7f makes the two sums differ.
    let signed: i64 = b
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(*x as i8)
            }
        })
        .sum();
    b[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    assert!(checksum_ok(&b));
    let out = through(&b).unwrap();
    let unsigned: u32 = out
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*x)
            }
        })
        .sum();
    assert_eq!(&out[148..156], format!("{unsigned:06o}\0 ").as_bytes());
}

#[test]
fn size_fields_are_read_one_way_only() {
    assert_eq!(read_size(b"00000000017\0"), Some(15));
    assert_eq!(read_size(b"         17 "), Some(15));
    assert_eq!(read_size(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Some(0));
    let mut b256 = [0u8; 12];
    b256[0] = 0x80;
    b256[11] = 9;
    assert_eq!(read_size(&b256), Some(9));
    b256[0] = 0xff;
    assert_eq!(read_size(&b256), None, "negative");
    b256[0] = 0x80;
    b256[2] = 1;
    assert_eq!(read_size(&b256), None, "more than 64 bits");
    assert_eq!(read_size(b"00000001x17\0"), None);
    let mut field = [0u8; 12];
    write_size(&mut field, 1 << 40);
    assert_eq!(read_size(&field), Some(1 << 40));
}

#[test]
fn pax_headers_two_readers_could_read_apart_are_refused() {
    let pax = |body: &[u8]| {
        let mut tar = header(
            "PaxHeaders/d",
            b'x',
            format!("{:011o}\0", body.len()).as_bytes(),
        )
        .to_vec();
        let mut data = body.to_vec();
        data.resize(BLOCK, 0);
        tar.extend_from_slice(&data);
        tar.extend_from_slice(&header("d/", b'5', b"00000000000\0"));
        tar.extend_from_slice(&[0; 2 * BLOCK]);
        through(&tar)
    };
    let err = pax(b"12 size=512\n").unwrap_err().to_string();
    assert!(
        err.contains("`d/` is a directory") && err.contains("512"),
        "{err}"
    );
    let err = pax(b"11 size=1x\n").unwrap_err().to_string();
    assert!(err.contains("size record"), "{err}");
    let err = pax(b"10 size=1\n10 size=2\n").unwrap_err().to_string();
    assert!(err.contains("two different sizes"), "{err}");
    let err = pax(b"99 size=1\n").unwrap_err().to_string();
    assert!(err.contains("malformed"), "{err}");
    assert!(pax(b"10 size=0\n").is_ok());
}

#[test]
fn a_solaris_extended_header_is_read_as_pax() {
    let body = b"16 path=renamed\n";
    let mut tar = header("X", b'X', format!("{:011o}\0", body.len()).as_bytes()).to_vec();
    let mut data = body.to_vec();
    data.resize(BLOCK, 0);
    tar.extend_from_slice(&data);
    tar.extend_from_slice(&[0; 2 * BLOCK]);
    let out = through(&tar).unwrap();
    assert_eq!(out[156], b'x');
}
