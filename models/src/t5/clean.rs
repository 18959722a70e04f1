//! Prompt cleaning of the official tokenizer wrapper (`wan/modules/tokenizers.py`,
//! `HuggingfaceTokenizer(clean='whitespace')`):
//! `basic_clean` = `ftfy.fix_text`, `html.unescape` twice, strip; then `whitespace_clean` =
//! every `\s+` run → one space, strip.
//!
//! Rust has no ftfy, so [`fix_text`] implements the ftfy 6 default steps that can change
//! what the umT5 tokenizer sees:
//! * `unescape_html` — only when the text has no `<`, one pass over `&…;` entities
//!   (so `&amp;amp;amp;` loses three levels in total with the two `html.unescape` calls);
//! * `remove_terminal_escapes` (ANSI `ESC[…m` sequences);
//! * `fix_encoding`, subset: UTF-8 that was decoded as Windows-1252 / Latin-1
//!   (`cafÃ©` → `café`), repaired sequence by sequence, repeated for double mojibake;
//!   then `fix_c1_controls` (stray U+0080–U+009F → their Windows-1252 characters);
//! * `fix_latin_ligatures`, `fix_character_width` (fullwidth → ASCII, U+3000 → space),
//!   `uncurl_quotes`, `fix_line_breaks`, `remove_control_chars`, and NFC.
//!
//! Known differences from ftfy (documented, not bugs): the mojibake repair has no
//! "badness" score — it repairs any complete, valid UTF-8 sequence spelled in
//! Windows-1252 characters (`Ã©`, `â€™`, …), which ftfy might leave alone in rare, legitimately
//! written text; other codecs (MacRoman, cp437, …), `restore_byte_a0`,
//! `replace_lossy_sequences` and `decode_inconsistent_utf8` corner cases are not reproduced.
//! `html.unescape` is `htmlize::unescape` (HTML5 rules); Python additionally drops a few
//! invalid numeric references (`&#1;`) instead of keeping them.
use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Python's `str.isspace` (what `\s` and `strip()` use): Unicode White_Space plus the
/// information separators U+001C–U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The official `'whitespace'` cleaning: `whitespace_clean(basic_clean(text))`.
pub fn clean_whitespace(text: &str) -> String {
    let t = fix_text(text);
    let t = htmlize::unescape(htmlize::unescape(t.as_str()).into_owned()).into_owned();
    // strip, then collapse `\s+` → ' ', strip (the first strip is subsumed).
    let mut out = String::with_capacity(t.len());
    for word in t.split(is_py_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The ftfy 6 `fix_text` subset described in the module header.
pub fn fix_text(text: &str) -> String {
    let mut t: Cow<str> = Cow::Borrowed(text);
    if !t.contains('<') {
        t = Cow::Owned(unescape_entities_once(&t));
    }
    let mut t = remove_terminal_escapes(&t);
    for _ in 0..4 {
        let fixed = fix_mojibake(&t);
        if fixed == t {
            break;
        }
        t = fixed;
    }
    let t: String = t.chars().map(fix_c1_control).collect();
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match ligature(c) {
            Some(s) => out.push_str(s),
            None => match c {
                '\u{3000}' => out.push(' '),
                '\u{FF01}'..='\u{FFEF}' => out.extend(c.nfkc()),
                '\u{02BC}' | '\u{2018}'..='\u{201B}' => out.push('\''),
                '\u{201C}'..='\u{201F}' => out.push('"'),
                _ => out.push(c),
            },
        }
    }
    let out = out
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
    out.chars().filter(|&c| !is_control(c)).nfc().collect()
}

/// ftfy `unescape_html`: each `&#?[0-9A-Za-z]{1,24};` replaced by its unescaped value, once.
fn unescape_entities_once(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        let body = tail[1..].strip_prefix('#').unwrap_or(&tail[1..]);
        let hash = tail.len() - 1 - body.len();
        let n = body
            .bytes()
            .take(25)
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        if (1..=24).contains(&n) && body.as_bytes().get(n) == Some(&b';') {
            let ent = &tail[..1 + hash + n + 1];
            out.push_str(&htmlize::unescape(ent));
            rest = &tail[ent.len()..];
        } else {
            out.push('&');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// ftfy `remove_terminal_escapes`: `ESC [ [0-9;]* [A-Za-z]` removed.
fn remove_terminal_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find("\u{1b}[") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let n = after
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b';')
            .count();
        match after.as_bytes().get(n) {
            Some(b) if b.is_ascii_alphabetic() => rest = &after[n + 1..],
            _ => {
                out.push_str(&rest[p..p + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Windows-1252 characters of bytes 0x80–0x9F (0 = undefined in cp1252).
const CP1252_HIGH: [char; 32] = [
    '€', '\0', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\0', 'Ž', '\0', '\0', '‘',
    '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\0', 'ž', 'Ÿ',
];

/// The byte a character stands for in "sloppy" Windows-1252 (Latin-1 where cp1252 is
/// undefined, C1 controls included), for non-ASCII characters only.
fn sloppy_cp1252_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if (0x80..=0xFF).contains(&u) {
        return Some(u as u8);
    }
    CP1252_HIGH
        .iter()
        .position(|&h| h == c && h != '\0')
        .map(|i| 0x80 + i as u8)
}

/// One pass of mojibake repair: a lead byte C2–F4 followed by the right number of
/// continuation bytes 80–BF (all spelled as cp1252 characters) that decode as valid UTF-8.
fn fix_mojibake(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let need = match sloppy_cp1252_byte(chars[i]) {
            Some(0xC2..=0xDF) => 1,
            Some(0xE0..=0xEF) => 2,
            Some(0xF0..=0xF4) => 3,
            _ => 0,
        };
        if need > 0 && i + need < chars.len() {
            let bytes: Option<Vec<u8>> = chars[i..=i + need]
                .iter()
                .enumerate()
                .map(|(j, &c)| {
                    sloppy_cp1252_byte(c).filter(|b| j == 0 || (0x80..=0xBF).contains(b))
                })
                .collect();
            if let Some(s) = bytes.and_then(|b| String::from_utf8(b).ok()) {
                out.push_str(&s);
                i += need + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// ftfy `fix_c1_controls`: a stray C1 control is the Windows-1252 character of its byte.
fn fix_c1_control(c: char) -> char {
    let u = c as u32;
    if (0x80..=0x9F).contains(&u) {
        let h = CP1252_HIGH[(u - 0x80) as usize];
        if h != '\0' {
            return h;
        }
    }
    c
}

/// ftfy `fix_latin_ligatures`.
fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// ftfy `remove_control_chars`: C0 controls except tab/LF/FF/CR, DEL, deprecated format
/// characters U+206A–U+206F, BOM, interlinear annotation U+FFF9–U+FFFC.
fn is_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_runs_collapse_and_strip() {
        assert_eq!(
            clean_whitespace("   A  dog\trunning \n\n on the   beach.   "),
            "A dog running on the beach."
        );
        assert_eq!(clean_whitespace(" \t\n "), "");
        assert_eq!(clean_whitespace(""), "");
        // NBSP, ideographic space and the \x1c..\x1f separators are Python whitespace;
        // the zero-width space is not (the tokenizer's nmt_nfkc drops it later).
        assert_eq!(clean_whitespace("a\u{a0}b\u{3000}c"), "a b c");
        assert_eq!(clean_whitespace("a\u{200b}b"), "a\u{200b}b");
    }

    #[test]
    fn html_is_unescaped_three_times_without_angle_brackets() {
        // ftfy's own pass + the two html.unescape calls of basic_clean.
        assert_eq!(clean_whitespace("Fish &amp;amp;amp; chips"), "Fish & chips");
        assert_eq!(
            clean_whitespace("Tom &amp;amp; Jerry&#39;s"),
            "Tom & Jerry's"
        );
        // With a '<' ftfy leaves entities alone: only two levels are undone.
        assert_eq!(clean_whitespace("<b> &amp;amp;amp;"), "<b> &amp;");
        assert_eq!(clean_whitespace("a &lt;tag&gt; b"), "a <tag> b");
    }

    #[test]
    fn mojibake_is_repaired() {
        assert_eq!(
            clean_whitespace("The cafÃ© was closed."),
            "The café was closed."
        );
        assert_eq!(fix_text("donâ€™t"), "don't"); // ’ via cp1252, then uncurled
        assert_eq!(fix_text("ä¸\u{AD}æ–‡"), "中文"); // 3-byte sequences
        assert_eq!(fix_text("cafÃƒÂ©"), "café"); // double mojibake
        // Legitimate Latin-1 text is untouched.
        assert_eq!(fix_text("Müller à Noël"), "Müller à Noël");
    }

    #[test]
    fn width_ligatures_quotes_controls() {
        assert_eq!(fix_text("ＦＵＬＬ ｔｅｘｔ，"), "FULL text,");
        assert_eq!(fix_text("ﬁne ﬂow"), "fine flow");
        assert_eq!(fix_text("“quotes” ‘single’"), "\"quotes\" 'single'");
        assert_eq!(fix_text("a\u{0}b\u{7f}c\u{feff}"), "abc");
        assert_eq!(fix_text("red\u{1b}[31m text\u{1b}[0m"), "red text");
        assert_eq!(fix_text("a\r\nb\rc"), "a\nb\nc");
        // NFC composes e + combining acute.
        assert_eq!(fix_text("e\u{301}"), "é");
    }

    #[test]
    fn cjk_and_emoji_pass_through() {
        assert_eq!(
            clean_whitespace("一只白猫戴着墨镜坐在冲浪板上，阳光明媚。"),
            "一只白猫戴着墨镜坐在冲浪板上,阳光明媚。"
        );
        assert_eq!(
            clean_whitespace("A cat 🐱 surfing 🏄‍♂️ at sunset 🌅!"),
            "A cat 🐱 surfing 🏄‍♂️ at sunset 🌅!"
        );
    }
}
