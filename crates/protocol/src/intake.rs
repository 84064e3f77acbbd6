//! The intake form: the raw body as a customer sends it, and `Intake::parse`, which turns it into
//! a value that is known to be valid or into per-field errors. The web form applies the same rules
//! (both sides are checked against `tests/fixtures/intake/`).

use std::collections::BTreeMap;

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::Vehicle;
use crate::text::{Lines, CONTROL_CHARACTER_MESSAGE};
use crate::vin;

pub const NAME_MAX: usize = 100;
pub const EMAIL_MAX: usize = 254;
pub const MAKE_MODEL_MAX: usize = 50;
pub const CONCERN_MIN: usize = 10;
pub const CONCERN_MAX: usize = 2000;
pub const YEAR_MIN: i32 = 1900;
pub const MILEAGE_MAX: u32 = 2_000_000;
pub const PHONE_DIGITS_MIN: usize = 7;
pub const PHONE_DIGITS_MAX: usize = 15;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct VehicleInput {
    #[serde(default, deserialize_with = "whole_number")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::year, required = true))]
    pub year: i32,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::make_model, required = true))]
    pub make: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::make_model, required = true))]
    pub model: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::vin))]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub vin: Option<String>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::mileage))]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub mileage: Option<u32>,
}

/// A whole number, also when written with a zero fraction (`2018.0`): JSON has one number type,
/// and the API document's `integer` (JSON Schema's) includes such numbers.
pub(crate) fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    number
        .as_i64()
        .or_else(|| {
            // Above 2^53 a float no longer holds every whole number exactly.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
                .map(|f| f as i64)
        })
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| {
            D::Error::invalid_value(
                Unexpected::Other(&format!("the number {number}")),
                &"a whole number in range",
            )
        })
}

fn optional_whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| whole_number(number).map_err(D::Error::custom))
        .transpose()
}

/// `POST /api/intake` as sent. Missing text fields read as empty, so that they are reported per
/// field like any other problem; wrong types are refused before this.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct IntakeRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::name, required = true))]
    pub name: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::email, required = true))]
    pub email: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::phone))]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub phone: Option<String>,
    pub vehicle: VehicleInput,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::concern, required = true))]
    pub concern: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::api::schema::plan, required = true))]
    pub plan: String,
}

/// A checked intake; the plan id is checked against the configured plans by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub vehicle: Vehicle,
    pub concern: String,
    pub plan: String,
}

/// Problems found in a body, keyed by the field's path.
pub type FieldErrors = BTreeMap<String, String>;

fn trimmed_len(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    errors: &mut FieldErrors,
) -> String {
    let value = value.trim();
    let len = value.chars().count();
    if len < min {
        let message = if min <= 1 {
            "This field is required".to_string()
        } else {
            format!("Please write at least {min} characters")
        };
        errors.insert(field.into(), message);
    } else if len > max {
        errors.insert(
            field.into(),
            format!("Please keep this under {} characters", max + 1),
        );
    }
    value.to_string()
}

/// Refuses control characters in a field whose length was acceptable, so that a field reports
/// one problem at a time.
fn refuse_controls(field: &str, value: &str, lines: Lines, errors: &mut FieldErrors) {
    if !lines.allows(value) && !errors.contains_key(field) {
        errors.insert(field.into(), CONTROL_CHARACTER_MESSAGE.into());
    }
}

pub fn email_is_valid(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub fn phone_is_valid(phone: &str) -> bool {
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    allowed && (PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits)
}

impl Intake {
    /// Checks every field and reports all problems at once. `current_year` bounds the model year
    /// (next year's models are sold this year).
    pub fn parse(raw: IntakeRequest, current_year: i32) -> Result<Intake, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = trimmed_len("name", &raw.name, 1, NAME_MAX, &mut errors);
        refuse_controls("name", &name, Lines::One, &mut errors);
        let email = trimmed_len("email", &raw.email, 1, EMAIL_MAX, &mut errors).to_lowercase();
        // An address is counted as sent (white space around it included), as the API document
        // states it: no address needs padding to fit.
        if !errors.contains_key("email") && raw.email.chars().count() > EMAIL_MAX {
            errors.insert(
                "email".into(),
                format!("Please keep this under {} characters", EMAIL_MAX + 1),
            );
        }
        if !errors.contains_key("email") && !email_is_valid(&email) {
            errors.insert(
                "email".into(),
                "Please enter an email address like name@example.com".into(),
            );
        }
        let phone = raw
            .phone
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
        if let Some(phone) = &phone {
            if !phone_is_valid(phone) {
                errors.insert(
                    "phone".into(),
                    format!("A phone number has {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX} digits"),
                );
            }
        }
        let year_max = current_year + 1;
        if !(YEAR_MIN..=year_max).contains(&raw.vehicle.year) {
            errors.insert(
                "vehicle.year".into(),
                format!("The model year must be between {YEAR_MIN} and {year_max}"),
            );
        }
        let make = trimmed_len(
            "vehicle.make",
            &raw.vehicle.make,
            1,
            MAKE_MODEL_MAX,
            &mut errors,
        );
        refuse_controls("vehicle.make", &make, Lines::One, &mut errors);
        let model = trimmed_len(
            "vehicle.model",
            &raw.vehicle.model,
            1,
            MAKE_MODEL_MAX,
            &mut errors,
        );
        refuse_controls("vehicle.model", &model, Lines::One, &mut errors);
        let vin = match raw.vehicle.vin.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => match vin::parse(v) {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.insert("vehicle.vin".into(), e.to_string());
                    None
                }
            },
        };
        if let Some(mileage) = raw.vehicle.mileage {
            if mileage > MILEAGE_MAX {
                errors.insert(
                    "vehicle.mileage".into(),
                    format!("Mileage must be at most {MILEAGE_MAX}"),
                );
            }
        }
        let concern = trimmed_len(
            "concern",
            &raw.concern,
            CONCERN_MIN,
            CONCERN_MAX,
            &mut errors,
        );
        refuse_controls("concern", &concern, Lines::Many, &mut errors);
        let plan = raw.plan.trim().to_string();
        if plan.is_empty() {
            errors.insert("plan".into(), "Please choose a plan".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Intake {
            name,
            email,
            phone,
            vehicle: Vehicle {
                year: raw.vehicle.year,
                make,
                model,
                vin,
                mileage: raw.vehicle.mileage,
            },
            concern,
            plan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> IntakeRequest {
        IntakeRequest {
            name: " Dana Driver ".into(),
            email: "Dana@Example.com".into(),
            phone: Some("+1 (555) 010-2030".into()),
            vehicle: VehicleInput {
                year: 2018,
                make: "Honda".into(),
                model: "Civic".into(),
                vin: Some("1hgcm82633a004352".into()),
                mileage: Some(84_000),
            },
            concern: "Grinding noise when braking at low speed".into(),
            plan: "trial".into(),
        }
    }

    #[test]
    fn a_valid_intake_is_normalised() {
        let intake = Intake::parse(valid(), 2026).unwrap();
        assert_eq!(intake.name, "Dana Driver");
        assert_eq!(intake.email, "dana@example.com");
        assert_eq!(intake.vehicle.vin.as_deref(), Some("1HGCM82633A004352"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut raw = valid();
        raw.name = "  ".into();
        raw.email = "not-an-email".into();
        raw.vehicle.year = 2030;
        raw.vehicle.vin = Some("1HGCM82643A004352".into());
        raw.concern = "noise".into();
        raw.phone = Some("12".into());
        let errors = Intake::parse(raw, 2026).unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "concern",
                "email",
                "name",
                "phone",
                "vehicle.vin",
                "vehicle.year"
            ]
        );
    }

    #[derive(Deserialize)]
    struct Case {
        description: String,
        input: serde_json::Value,
        current_year: i32,
        valid: bool,
        fields: Vec<String>,
    }

    /// The same cases the web form's validation is tested with.
    #[test]
    fn shared_fixtures_match() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/intake/cases.json"
        );
        let cases: Vec<Case> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(cases.len() > 20);
        let offered = ["trial", "standard", "extended"];
        for case in cases {
            let raw: IntakeRequest = serde_json::from_value(case.input.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", case.description));
            let mut fields: Vec<String> = match Intake::parse(raw, case.current_year) {
                Ok(intake) if offered.contains(&intake.plan.as_str()) => Vec::new(),
                Ok(_) => vec!["plan".into()],
                Err(errors) => {
                    let mut fields: Vec<String> = errors.into_keys().collect();
                    let plan = case.input["plan"].as_str().unwrap_or("").trim();
                    if !plan.is_empty()
                        && !offered.contains(&plan)
                        && !fields.contains(&"plan".to_string())
                    {
                        fields.push("plan".into());
                    }
                    fields
                }
            };
            fields.sort();
            let mut want = case.fields.clone();
            want.sort();
            assert_eq!(fields.is_empty(), case.valid, "{}", case.description);
            assert_eq!(fields, want, "{}", case.description);
        }
    }

    #[test]
    fn whole_numbers_may_carry_a_zero_fraction() {
        let vehicle = |json: &str| serde_json::from_str::<VehicleInput>(json);
        let v = vehicle(r#"{"year": 2018.0, "mileage": 84000.0}"#).unwrap();
        assert_eq!((v.year, v.mileage), (2018, Some(84_000)));
        let v = vehicle(r#"{"year": 2018, "mileage": null}"#).unwrap();
        assert_eq!((v.year, v.mileage), (2018, None));
        assert_eq!(vehicle("{}").unwrap().mileage, None);
        for bad in [
            r#"{"year": 2018.5}"#,
            r#"{"year": 1e300}"#,
            r#"{"year": 2147483648}"#,
            r#"{"year": "2018"}"#,
            r#"{"mileage": -1}"#,
            r#"{"mileage": 0.5}"#,
            r#"{"mileage": 4294967296.0}"#,
        ] {
            assert!(vehicle(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_optional_fields_are_absent() {
        let mut raw = valid();
        raw.phone = Some(" ".into());
        raw.vehicle.vin = Some("".into());
        let intake = Intake::parse(raw, 2026).unwrap();
        assert_eq!(intake.phone, None);
        assert_eq!(intake.vehicle.vin, None);
    }
}
