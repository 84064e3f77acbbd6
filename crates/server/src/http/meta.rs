//! Operational endpoints: liveness, readiness (database, bus, draining), the OpenAPI document,
//! the server's public configuration (`/api/config`: whether mail is on), and Prometheus metrics,
//! which are
//! for operators only: served by [`metrics_router`] on the separate `--metrics-bind` listener,
//! and a plain 404 on the public one.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use time::OffsetDateTime;
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::RefOr;
use utoipa::OpenApi;
use wrenchline_protocol::{schema, Health, Plan, PublicConfig, ServerTime};

use crate::error::ApiError;
use crate::http::ApiDoc;
use crate::limits::Limits;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Named here so that the customer page's fallback does not answer it either.
        .route("/metrics", get(not_public))
        .route("/api/openapi.json", get(openapi))
        .route("/api/time", get(server_time))
        .route("/api/config", get(public_config))
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_public)
        .with_state(state)
}

async fn not_public() -> ApiError {
    ApiError::not_found("page")
}

#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, description = "The database is unreachable", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let version = env!("CARGO_PKG_VERSION").to_string();
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                version,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = ?e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "database_unavailable".into(),
                    version,
                }),
            )
        }
    }
}

/// Whether this node can serve, and the state of what it depends on.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// This node's name in its cluster (`--node-id`); absent for a node that runs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `up` or `down`.
    pub database: &'static str,
    /// `local` (a node alone: the bus is in-process), `subscribed` (Redis) or `down`.
    pub bus: &'static str,
    /// The node is stopping: it finishes what is under way and takes nothing new.
    pub draining: bool,
}

/// How long the database may take to answer a readiness check.
const READY_DATABASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[utoipa::path(get, path = "/readyz", tag = "meta", security(()),
    responses((status = 200, description = "The node can serve", body = Readiness),
        (status = 503, description = "The node cannot serve: its database or bus is down, or it is draining", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = matches!(
        tokio::time::timeout(READY_DATABASE_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let bus = match &state.cluster {
        None => "local",
        Some(cluster) if cluster.is_up() => "subscribed",
        Some(_) => "down",
    };
    let draining = state.is_draining();
    let ready = database && bus != "down" && !draining;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        node: state.cluster.as_ref().map(|c| c.node().to_string()),
        database: if database { "up" } else { "down" },
        bus,
        draining,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text exposition, on the metrics listener only.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(available) = crate::availability::mechanics_online(&state).await {
        state.metrics.mechanics_available.set(i64::from(available));
    }
    state.metrics.read_heap();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let settings = &state.settings;
    Json(document(&settings.plans, &settings.limits, state.now()))
}

/// `ApiDoc` with what only the running server knows: the plans it offers, the latest model year
/// it accepts today and the longest message it takes, the same facts `POST /api/intake` and
/// `POST /api/sessions/{id}/messages` check against.
pub fn document(plans: &[Plan], limits: &Limits, now: OffsetDateTime) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let schemas = doc
        .components
        .as_mut()
        .map(|components| &mut components.schemas);
    if let Some(schemas) = schemas {
        if let Some(plan) = property(schemas, "IntakeRequest", "plan") {
            plan.pattern = Some(schema::plan_pattern(plans.iter().map(|p| p.id.as_str())));
        }
        if let Some(year) = property(schemas, "VehicleInput", "year") {
            year.maximum = Some((now.year() + 1).into());
        }
        if let Some(body) = property(schemas, "PostMessageRequest", "body") {
            *body = schema::message_body_up_to(limits.message_max_chars);
        }
        needs_body_or_attachment(schemas, limits.message_max_chars);
    }
    doc
}

/// A message needs a body or at least one attachment: `allOf` the object (whose `body` may then
/// be blank) and `anyOf` a message with text (`body` as the server checks it) or one with an
/// attachment.
fn needs_body_or_attachment(schemas: &mut BTreeMap<String, RefOr<Schema>>, max_chars: usize) {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder};
    let Some(RefOr::T(Schema::Object(mut message))) = schemas.get("PostMessageRequest").cloned()
    else {
        return;
    };
    let text = schema::message_body_up_to(max_chars);
    if let Some(RefOr::T(Schema::Object(body))) = message.properties.get_mut("body") {
        let strict = text.pattern.clone().unwrap_or_default();
        body.pattern = Some(format!("^[{}]*$|{strict}", schema::WHITE_SPACE));
        body.min_length = None;
        body.description = Some(
            "The text (see the rules in `anyOf`); blank or left out when `attachment_ids` names \
             at least one attachment."
                .into(),
        );
    }
    let with_body = ObjectBuilder::new().property("body", text).required("body");
    let with_attachment = ObjectBuilder::new()
        .property("attachment_ids", ArrayBuilder::new().min_items(Some(1)))
        .required("attachment_ids");
    let either = AnyOfBuilder::new().item(with_body).item(with_attachment);
    schemas.insert(
        "PostMessageRequest".into(),
        RefOr::T(Schema::AllOf(
            AllOfBuilder::new()
                .item(message)
                .item(either)
                .description(Some("A message: text, attachments, or both"))
                .build(),
        )),
    );
}

fn property<'a>(
    schemas: &'a mut BTreeMap<String, RefOr<Schema>>,
    component: &str,
    name: &str,
) -> Option<&'a mut Object> {
    let Some(RefOr::T(Schema::Object(object))) = schemas.get_mut(component) else {
        return None;
    };
    match object.properties.get_mut(name) {
        Some(RefOr::T(Schema::Object(property))) => Some(property),
        _ => None,
    }
}

#[utoipa::path(get, path = "/api/time", tag = "meta", security(()),
    responses((status = 200, description = "The server's clock (millisecond precision)", body = ServerTime)))]
pub async fn server_time(State(state): State<AppState>) -> Json<ServerTime> {
    Json(ServerTime { now: state.now() })
}

#[utoipa::path(get, path = "/api/config", tag = "meta", security(()),
    responses((status = 200, description = "What the customer's pages need to know about this server: whether it mails customers", body = PublicConfig)))]
pub async fn public_config(State(state): State<AppState>) -> Json<PublicConfig> {
    Json(PublicConfig {
        mail: state.mail.is_some(),
    })
}

/// A property of a component schema as the server checks it on its own: for a component with
/// rules across its fields (`allOf: [the object, {anyOf: [...]}]`), the first `anyOf` branch
/// that states it, else the object's.
#[cfg(test)]
pub(crate) fn strict_property(schema: &serde_json::Value, name: &str) -> serde_json::Value {
    let Some(all) = schema.get("allOf") else {
        return schema["properties"][name].clone();
    };
    let branches = all.as_array().into_iter().flatten().skip(1);
    branches
        .flat_map(|rule| rule["anyOf"].as_array().cloned().unwrap_or_default())
        .map(|branch| branch["properties"][name].clone())
        .find(|property| !property.is_null())
        .unwrap_or_else(|| all[0]["properties"][name].clone())
}

#[cfg(test)]
mod tests {
    //! The document's constraints against the validators they describe: each pattern and bound
    //! is tried on the values at and around its limits, and must agree with the server's checks.

    use regex::Regex;
    use serde_json::Value;
    use time::macros::datetime;
    use wrenchline_protocol::intake::{
        CONCERN_MAX, CONCERN_MIN, EMAIL_MAX, MAKE_MODEL_MAX, MILEAGE_MAX, NAME_MAX, YEAR_MIN,
    };
    use wrenchline_protocol::{
        Intake, IntakeRequest, PostMessageRequest, VehicleInput, WaiverRequest,
        MAX_CLIENT_ID_CHARS, MAX_MESSAGE_CHARS,
    };

    use super::*;
    use crate::config::default_plans;
    use crate::http::intake::waiver_problems;
    use crate::http::messages::{message_problems, HISTORY_PAGE_MAX};

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn doc() -> Value {
        serde_json::to_value(document(&default_plans(), &Limits::default(), NOW)).unwrap()
    }

    fn property(doc: &Value, component: &str, name: &str) -> Value {
        strict_property(&doc["components"]["schemas"][component], name)
    }

    /// The property's `pattern`, compiled as the whole-string match JSON Schema means by it.
    fn pattern(schema: &Value) -> Regex {
        let pattern = schema["pattern"].as_str().expect("a pattern");
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 26)
            .build()
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    fn valid_intake() -> IntakeRequest {
        IntakeRequest {
            name: "Dana Driver".into(),
            email: "dana@example.com".into(),
            phone: None,
            vehicle: VehicleInput {
                year: 2018,
                make: "Honda".into(),
                model: "Civic".into(),
                vin: None,
                mileage: None,
            },
            concern: "Grinding noise when braking".into(),
            plan: "standard".into(),
        }
    }

    /// Whether the intake accepts `raw` in `field`, with every other field valid.
    fn intake_accepts(field: &str, raw: &str) -> bool {
        let mut intake = valid_intake();
        match field {
            "name" => intake.name = raw.into(),
            "email" => intake.email = raw.into(),
            "phone" => intake.phone = Some(raw.into()),
            "concern" => intake.concern = raw.into(),
            "vehicle.make" => intake.vehicle.make = raw.into(),
            "vehicle.model" => intake.vehicle.model = raw.into(),
            "vehicle.vin" => intake.vehicle.vin = Some(raw.into()),
            other => panic!("no field {other}"),
        }
        Intake::parse(intake, NOW.year()).is_ok()
    }

    /// Texts at and around the limits of a trimmed length of `min..=max`.
    fn around(min: usize, max: usize) -> Vec<String> {
        let text = |n: usize| "a".repeat(n.saturating_sub(1)) + if n > 0 { "é" } else { "" };
        let mut texts = vec![String::new(), " ".into(), "\t\u{3000}\n".into()];
        for n in [min.saturating_sub(1), min, min + 1, max - 1, max, max + 1] {
            texts.push(text(n));
            texts.push(format!(" \u{a0}{}\r\n", text(n)));
            texts.push(format!("{}\u{85}", text(n)));
        }
        texts.push(format!("a{}a", " ".repeat(max.saturating_sub(2))));
        texts.push(format!("a{}a", " ".repeat(max - 1)));
        texts.push("\u{feff}".into());
        texts.push("\u{1c}".into());
        texts
    }

    fn assert_agree(
        what: &str,
        schema: &Value,
        samples: &[String],
        accepts: impl Fn(&str) -> bool,
    ) {
        let re = pattern(schema);
        let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
        let max = schema["maxLength"]
            .as_u64()
            .map_or(usize::MAX, |n| n as usize);
        for sample in samples {
            let length = sample.chars().count();
            assert_eq!(
                re.is_match(sample) && (min..=max).contains(&length),
                accepts(sample),
                "{what}: document and server disagree on {sample:?} ({length} chars)",
            );
        }
    }

    #[test]
    fn sign_in_emails_are_the_validator() {
        let emails: Vec<String> = [
            "sam@garage.example",
            " Sam@Garage.Example\t\r\n",
            "",
            "   ",
            "not an address",
            "sam@garage.example\u{0}",
            "sam\u{17}@garage.example",
            "\u{1d}sam",
            "sam\tsmith@garage.example",
            "\u{85}sam\u{85}",
            "sam\u{99}@garage.example",
        ]
        .map(String::from)
        .into_iter()
        .chain(around(1, 20))
        .chain(around(1, EMAIL_MAX))
        .collect();
        let email = property(&doc(), "LoginRequest", "email");
        assert_agree("login email", &email, &emails, |s| {
            crate::http::auth::login_email(s).is_ok()
        });
    }

    #[test]
    fn the_white_space_class_is_what_trim_removes() {
        let class = Regex::new(&format!("^[{}]$", schema::WHITE_SPACE)).unwrap();
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                c.is_whitespace(),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn text_limits_are_the_validators() {
        let doc = doc();
        let body = property(&doc, "PostMessageRequest", "body");
        assert_agree("message body", &body, &around(1, MAX_MESSAGE_CHARS), |s| {
            message_problems(
                &PostMessageRequest {
                    body: s.into(),
                    client_id: "c1".into(),
                    attachment_ids: Vec::new(),
                },
                MAX_MESSAGE_CHARS,
            )
            .is_empty()
        });
        let limits = Limits {
            message_max_chars: 12,
            ..Limits::default()
        };
        let configured = serde_json::to_value(document(&default_plans(), &limits, NOW)).unwrap();
        let body = property(&configured, "PostMessageRequest", "body");
        assert_agree("configured message body", &body, &around(1, 12), |s| {
            message_problems(
                &PostMessageRequest {
                    body: s.into(),
                    client_id: "c1".into(),
                    attachment_ids: Vec::new(),
                },
                12,
            )
            .is_empty()
        });
        let signed = property(&doc, "WaiverRequest", "signed_name");
        assert_agree("signed_name", &signed, &around(1, NAME_MAX), |s| {
            waiver_problems(&WaiverRequest {
                signed_name: s.into(),
                agree: true,
            })
            .is_empty()
        });
        for (component, name, field, min, max) in [
            ("IntakeRequest", "name", "name", 1, NAME_MAX),
            (
                "IntakeRequest",
                "concern",
                "concern",
                CONCERN_MIN,
                CONCERN_MAX,
            ),
            ("VehicleInput", "make", "vehicle.make", 1, MAKE_MODEL_MAX),
            ("VehicleInput", "model", "vehicle.model", 1, MAKE_MODEL_MAX),
        ] {
            let schema = property(&doc, component, name);
            assert_eq!(schema["minLength"], min, "{field}");
            assert_agree(field, &schema, &around(min, max), |s| {
                intake_accepts(field, s)
            });
        }
    }

    #[test]
    fn client_ids_are_the_validators() {
        let schema = property(&doc(), "PostMessageRequest", "client_id");
        assert_eq!(schema["maxLength"], MAX_CLIENT_ID_CHARS);
        let mut samples: Vec<String> = ["", "a", "a b", " a", "é", "a:b.c-d_e", "x/y", "a\n"]
            .map(String::from)
            .into();
        samples.push("z".repeat(MAX_CLIENT_ID_CHARS));
        samples.push("z".repeat(MAX_CLIENT_ID_CHARS + 1));
        assert_agree("client_id", &schema, &samples, |s| {
            messages_accepts_client_id(s)
        });
    }

    fn messages_accepts_client_id(id: &str) -> bool {
        message_problems(
            &PostMessageRequest {
                body: "hello".into(),
                client_id: id.into(),
                attachment_ids: Vec::new(),
            },
            MAX_MESSAGE_CHARS,
        )
        .is_empty()
    }

    #[test]
    fn emails_phones_and_vins_are_the_validators() {
        let doc = doc();
        let local = "l".repeat(EMAIL_MAX - 6);
        let emails: Vec<String> = [
            "dana@example.com",
            " Dana@Example.COM\t",
            "a@b.c",
            "a@b..c",
            "a.b+c@d-e.f",
            "",
            "a",
            "a@b",
            "@b.c",
            "a@.b.c",
            "a@b.c.",
            "a@b@c.d",
            "a b@c.d",
            "a@b.c\u{7f}",
            "a\u{0}@b.c",
        ]
        .map(String::from)
        .into_iter()
        .chain([
            format!("{local}@ab.cd"),
            format!("{local}@abc.de"),
            format!("  {local}@ab.cd  "),
        ])
        .collect();
        let email = property(&doc, "IntakeRequest", "email");
        assert_eq!(email["maxLength"], EMAIL_MAX);
        assert_agree("email", &email, &emails, |s| intake_accepts("email", s));

        let phones = [
            "+1 (555) 010-2030",
            "5550102",
            "555010",
            "123456789012345",
            "1234567890123456",
            " 555 0102 ",
            "",
            "   ",
            "+-()",
            "555-0102 ext 4",
            "\u{2003}5550102",
        ]
        .map(String::from);
        let phone = property(&doc, "IntakeRequest", "phone");
        assert_agree("phone", &phone, &phones, |s| intake_accepts("phone", s));

        // Shapes only: the check digit is the one rule a pattern cannot state, so every VIN
        // here carries a correct one or a wrong shape.
        let vins = [
            "1HGCM82633A004352",
            " 1hgcm82633a004352\n",
            "11111111111111111",
            "",
            "  ",
            "1HGCM82633A00435",
            "1HGCM82633A0043521",
            "1HGCM82633A00435O",
            "1HGCM82633A00435i",
            "1HGCM82633A00435é",
        ]
        .map(String::from);
        let vin = property(&doc, "VehicleInput", "vin");
        assert_agree("vin", &vin, &vins, |s| intake_accepts("vehicle.vin", s));
    }

    #[test]
    fn numeric_bounds_are_the_validators() {
        let doc = doc();
        let year = property(&doc, "VehicleInput", "year");
        let mileage = property(&doc, "VehicleInput", "mileage");
        let bounds = [
            (year["minimum"].as_i64().unwrap(), i64::from(YEAR_MIN)),
            (year["maximum"].as_i64().unwrap(), i64::from(NOW.year() + 1)),
            (mileage["maximum"].as_i64().unwrap(), i64::from(MILEAGE_MAX)),
        ];
        for (documented, constant) in bounds {
            assert_eq!(documented, constant);
        }
        let accepts = |year: i64, mileage: u32| {
            let mut intake = valid_intake();
            intake.vehicle.year = year as i32;
            intake.vehicle.mileage = Some(mileage);
            Intake::parse(intake, NOW.year()).is_ok()
        };
        let (min, max) = (bounds[0].0, bounds[1].0);
        assert!(accepts(min, 0) && accepts(max, 0));
        assert!(!accepts(min - 1, 0) && !accepts(max + 1, 0));
        assert!(accepts(2018, MILEAGE_MAX) && !accepts(2018, MILEAGE_MAX + 1));

        let history = &doc["paths"]["/api/sessions/{id}/messages"]["get"]["parameters"];
        let param = |name: &str| {
            history
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].clone())
                .unwrap()
        };
        assert_eq!(param("limit")["maximum"], HISTORY_PAGE_MAX);
        assert_eq!(param("limit")["minimum"], 1);
        assert_eq!(param("after")["minimum"], 0);
    }

    #[test]
    fn plans_are_the_offered_ones() {
        let plans = default_plans();
        let schema = property(&doc(), "IntakeRequest", "plan");
        let mut samples: Vec<String> = plans.iter().map(|p| p.id.clone()).collect();
        samples.extend(plans.iter().map(|p| format!(" {}\t", p.id)));
        samples.extend(["", " ", "premium", "trial2", "TRIAL", "trial|standard"].map(String::from));
        assert_agree("plan", &schema, &samples, |s| {
            plans.iter().any(|p| p.id == s.trim())
        });
    }

    #[test]
    fn every_operation_states_who_may_call_it() {
        let doc = doc();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["customer_cookie"]["in"], "cookie");
        assert_eq!(
            schemes["customer_cookie"]["name"],
            crate::extract::CUSTOMER_COOKIE
        );
        let security = |method: &str, path: &str| -> Vec<String> {
            let operation = &doc["paths"][path][method];
            let requirements = operation["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} states no security"));
            requirements
                .iter()
                .map(|r| {
                    r.as_object()
                        .unwrap()
                        .keys()
                        .next()
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        };
        for (method, path) in [
            ("get", "/api/requests"),
            ("post", "/api/sessions/{id}/accept"),
        ] {
            assert_eq!(security(method, path), ["bearer"], "{method} {path}");
        }
        for (method, path) in [
            ("get", "/api/sessions/{id}"),
            ("post", "/api/sessions/{id}/start"),
            ("post", "/api/sessions/{id}/end"),
            ("get", "/api/sessions/{id}/messages"),
            ("post", "/api/sessions/{id}/messages"),
            ("post", "/api/sessions/{id}/waiver"),
            ("post", "/api/sessions/{id}/resume-link"),
            ("post", "/api/auth/token"),
        ] {
            let mut found = security(method, path);
            found.sort();
            assert_eq!(found, ["bearer", "customer_cookie"], "{method} {path}");
        }
        for (method, path) in [
            ("post", "/api/auth/login"),
            ("post", "/api/auth/refresh"),
            ("post", "/api/resume"),
            ("get", "/api/plans"),
            ("get", "/api/availability"),
            ("get", "/api/config"),
            ("get", "/healthz"),
            ("get", "/readyz"),
        ] {
            assert_eq!(security(method, path), [""], "{method} {path}");
        }
        assert!(security("post", "/api/intake").contains(&String::new()));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                security(method, path);
            }
        }
    }

    #[test]
    fn every_body_and_every_write_has_its_error_statuses() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                let mut wanted = Vec::new();
                if operation.get("requestBody").is_some() {
                    wanted.extend(["400", "413", "415", "422"]);
                }
                if method != "get" {
                    wanted.push("403");
                }
                if operation["security"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
                }) {
                    wanted.extend(["401", "500"]);
                }
                for status in wanted {
                    let response = responses
                        .get(status)
                        .unwrap_or_else(|| panic!("{method} {path} does not state {status}"));
                    assert!(
                        response["content"]["application/json"]["schema"]["$ref"]
                            .as_str()
                            .is_some_and(|r| r.ends_with("/ErrorBody")),
                        "{method} {path} {status} is not an ErrorBody"
                    );
                }
            }
        }
    }
}
