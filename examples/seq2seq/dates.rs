//! The translation task: dates as people write them ("3rd of March 2021", "Mar 3, 2021",
//! "Wednesday, March 3, 2021", ...) to ISO 8601 ("2021-03-03"), generated exactly from a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shapesafe::{Error, Result};

/// Source characters: every character the formats below can write. Token 0 is padding.
pub const SOURCE_ALPHABET: &str =
    " ,./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Source vocabulary: padding plus the alphabet.
pub const SOURCE_VOCAB: usize = 1 + SOURCE_ALPHABET.len();
/// Source positions: the longest format ("Wednesday, September 30, 2021") has 29 characters.
pub const SOURCE_LEN: usize = 32;
/// Target tokens: the ten digits, '-', then begin and end of sequence.
pub const TARGET_VOCAB: usize = 13;
pub const DASH: usize = 10;
pub const BOS: usize = 11;
pub const EOS: usize = 12;
/// Target positions: BOS and the 10 characters of `YYYY-MM-DD` in, the 10 and EOS out.
pub const TARGET_LEN: usize = 11;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: u32,
    pub month: u32,
    pub day: u32,
}

fn leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// A uniformly drawn day between 1950-01-01 and 2049-12-31.
    pub fn random(rng: &mut StdRng) -> Date {
        let year = rng.gen_range(1950..=2049);
        let month = rng.gen_range(1..=12);
        let day = rng.gen_range(1..=days_in(year, month));
        Date { year, month, day }
    }

    /// 0 for Monday: Howard Hinnant's days-from-civil, counted from 1970-01-01 (a Thursday).
    pub fn weekday(&self) -> usize {
        let (y, m, d) = (self.year as i64, self.month as i64, self.day as i64);
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        (days + 3).rem_euclid(7) as usize
    }

    /// `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    fn ordinal(&self) -> String {
        let suffix = match (self.day % 10, self.day % 100) {
            (_, 11..=13) => "th",
            (1, _) => "st",
            (2, _) => "nd",
            (3, _) => "rd",
            _ => "th",
        };
        format!("{}{suffix}", self.day)
    }

    /// The date in human format number `format` (of [`FORMATS`]).
    pub fn human(&self, format: usize) -> String {
        let month = MONTHS[self.month as usize - 1];
        let short = &month[..3];
        let weekday = WEEKDAYS[self.weekday()];
        let (d, y) = (self.day, self.year);
        match format % FORMATS {
            0 => format!("{} of {month} {y}", self.ordinal()),
            1 => format!("{short} {d}, {y}"),
            2 => format!("{month} {d}, {y}"),
            3 => format!("{d} {month} {y}"),
            4 => format!("{weekday}, {month} {d}, {y}"),
            5 => format!("the {} of {}, {y}", self.ordinal(), month.to_lowercase()),
            6 => format!("{} {d} {y}", month.to_uppercase()),
            7 => format!("{} {d} {short} {y}", &weekday[..3]),
            8 => format!("{d}.{}.{y}", self.month),
            _ => format!("{y}/{:02}/{:02}", self.month, self.day),
        }
    }
}

/// How many human formats there are.
pub const FORMATS: usize = 10;

/// One example: the human text and the ISO date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub human: String,
    pub iso: String,
}

/// `count` examples drawn from `seed`: a random date in a random format each.
pub fn examples(count: usize, seed: u64) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let date = Date::random(&mut rng);
            let format = rng.gen_range(0..FORMATS);
            Example {
                human: date.human(format),
                iso: date.iso(),
            }
        })
        .collect()
}

/// The source tokens of `text`, padded with 0 to [`SOURCE_LEN`].
///
/// # Errors
/// [`Error::Usage`] for an empty text, one longer than [`SOURCE_LEN`], or a character
/// outside [`SOURCE_ALPHABET`] (named with its position).
pub fn encode_source(text: &str) -> Result<[usize; SOURCE_LEN]> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Err(Error::Usage("the date to translate is empty".to_string()));
    }
    if chars.len() > SOURCE_LEN {
        return Err(Error::Usage(format!(
            "{text:?} has {} characters; the model reads at most {SOURCE_LEN}",
            chars.len()
        )));
    }
    let mut tokens = [0; SOURCE_LEN];
    for (i, c) in chars.into_iter().enumerate() {
        tokens[i] = 1 + SOURCE_ALPHABET.find(c).ok_or_else(|| {
            Error::Usage(format!(
                "{text:?} has {c:?} at position {}, which is not in the model's alphabet \
                 (letters, digits, space and , . /)",
                i + 1
            ))
        })?;
    }
    Ok(tokens)
}

/// The target token of an ISO character.
pub fn encode_target(c: char) -> usize {
    match c {
        '-' => DASH,
        d => d.to_digit(10).map_or(EOS, |d| d as usize),
    }
}

/// The character of a target token; `None` for BOS and EOS.
pub fn decode_target(token: usize) -> Option<char> {
    match token {
        0..=9 => char::from_digit(token as u32, 10),
        DASH => Some('-'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_and_formats_are_right() {
        let date = Date {
            year: 2021,
            month: 3,
            day: 3,
        };
        assert_eq!(date.human(0), "3rd of March 2021");
        assert_eq!(date.human(1), "Mar 3, 2021");
        assert_eq!(date.human(4), "Wednesday, March 3, 2021");
        assert_eq!(date.human(7), "Wed 3 Mar 2021");
        assert_eq!(date.iso(), "2021-03-03");
        let longest = Date {
            year: 2021,
            month: 9,
            day: 29,
        };
        assert!(longest.human(4).len() <= SOURCE_LEN);
        assert!(encode_source("3rd of March 2021").is_ok());
        assert!(encode_source("3rd of März 2021").is_err());
        assert!(encode_source("").is_err());
    }
}
