//! Input hygiene beyond the MQTT spec: control characters in names a client chooses
//! (client id, user name, topics) are refused unless `allow_control_characters` is set.

/// Whether `s` holds a control character: U+0001–U+001F, U+007F, or U+0080–U+009F
/// (U+0000 is already refused by the codec). A byte scan: the C1 controls are the UTF-8
/// pairs `C2 80` to `C2 9F`.
pub(crate) fn has_control_character(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        matches!(b, 0x01..=0x1f | 0x7f)
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

#[cfg(test)]
mod tests {
    use super::has_control_character;

    #[test]
    fn c0_del_and_c1_controls_are_found_and_nothing_else() {
        for bad in [
            "a\u{1}b",
            "\u{1f}",
            "x\u{7f}",
            "\u{80}",
            "t/\u{9f}/x",
            "\n",
            "a\tb",
        ] {
            assert!(has_control_character(bad), "{bad:?}");
        }
        for good in [
            "sensors/a/b",
            "",
            "é",
            "\u{a0}",
            "\u{100}",
            "日本/温度",
            "$SYS/x",
            " ",
        ] {
            assert!(!has_control_character(good), "{good:?}");
        }
    }
}
