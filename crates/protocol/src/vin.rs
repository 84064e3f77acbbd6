//! Vehicle Identification Number checks (ISO 3779 with the North American check digit).

/// Why a VIN was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VinError {
    #[error("a VIN has 17 characters")]
    Length,
    #[error("a VIN uses digits and the letters A–Z except I, O and Q")]
    Character,
    #[error("this VIN's check digit (9th character) does not match; please re-check it")]
    CheckDigit,
}

const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

fn transliterate(c: char) -> Option<u32> {
    Some(match c {
        '0'..='9' => c as u32 - '0' as u32,
        'A' | 'J' => 1,
        'B' | 'K' | 'S' => 2,
        'C' | 'L' | 'T' => 3,
        'D' | 'M' | 'U' => 4,
        'E' | 'N' | 'V' => 5,
        'F' | 'W' => 6,
        'G' | 'P' | 'X' => 7,
        'H' | 'Y' => 8,
        'R' | 'Z' => 9,
        _ => return None,
    })
}

/// The check digit a VIN should carry in position 9, computed from the other sixteen.
pub fn check_digit(vin: &str) -> Result<char, VinError> {
    let chars: Vec<char> = vin.chars().collect();
    if chars.len() != 17 {
        return Err(VinError::Length);
    }
    let mut sum = 0;
    for (c, weight) in chars.iter().zip(WEIGHTS) {
        sum += transliterate(*c).ok_or(VinError::Character)? * weight;
    }
    Ok(match sum % 11 {
        10 => 'X',
        n => char::from_digit(n, 10).expect("remainder below 10"),
    })
}

/// Normalises (trim, upper case) and checks a VIN, returning the normalised form.
pub fn parse(raw: &str) -> Result<String, VinError> {
    let vin = raw.trim().to_ascii_uppercase();
    let expected = check_digit(&vin)?;
    if vin.chars().nth(8) == Some(expected) {
        Ok(vin)
    } else {
        Err(VinError::CheckDigit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_good_vins() {
        for vin in [
            "1M8GDM9AXKP042788",
            "11111111111111111",
            "1HGCM82633A004352",
        ] {
            assert_eq!(parse(vin).as_deref(), Ok(vin), "{vin}");
        }
        assert_eq!(
            parse(" 1hgcm82633a004352 ").as_deref(),
            Ok("1HGCM82633A004352")
        );
    }

    #[test]
    fn refuses_a_wrong_check_digit() {
        assert_eq!(parse("1HGCM82643A004352"), Err(VinError::CheckDigit));
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(parse("1HGCM82633A00435"), Err(VinError::Length));
        assert_eq!(parse("1HGCM82633A00435O"), Err(VinError::Character));
        assert_eq!(parse(""), Err(VinError::Length));
    }
}
