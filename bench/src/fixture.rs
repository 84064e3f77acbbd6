//! The people and sessions the scenarios use, made the way real ones are: mechanics with
//! `wrenchline-server mechanic add` and one password login each (argon2 is deliberately slow, so
//! each token is reused by every connection of that mechanic); customers through `POST
//! /api/intake`, their identity cookie traded for an access token, the waiver signed, and the
//! request accepted by a mechanic.

use std::sync::Arc;

use anyhow::{bail, Context};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use wrenchline_client::ApiClient;
use wrenchline_protocol::{AccessToken, IntakeResponse, Session};

use crate::procs::{add_mechanic, Db, Programs};

pub const PASSWORD: &str = "bench-password-1234";

#[derive(Debug, Clone)]
pub struct Mechanic {
    pub id: Uuid,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: Uuid,
    pub token: String,
}

/// A session accepted by one of the fixture's mechanics.
#[derive(Debug, Clone)]
pub struct Pair {
    pub session: Uuid,
    pub customer: Customer,
    pub mechanic: usize,
}

/// Everything made in one database.
#[derive(Debug, Default)]
pub struct Fixture {
    pub mechanics: Vec<Mechanic>,
    pub pairs: Vec<Pair>,
}

fn email(i: usize) -> String {
    format!("bench-mechanic-{i}@wrenchline.test")
}

/// Creates `count` mechanics in `db` (before or while its server runs).
pub async fn add_mechanics(programs: &Programs, db: &Db, count: usize) -> anyhow::Result<()> {
    let bin = &programs.server_bin;
    let add = |i: usize| async move {
        match add_mechanic(bin, db, &email(i), &format!("Bench Mechanic {i}"), PASSWORD).await {
            // A database kept from an earlier suite already has them.
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            other => other,
        }
    };
    // The first one alone: it creates the schema, which concurrent first starts would race on.
    if count > 0 {
        add(0).await?;
    }
    stream::iter(1..count)
        .map(add)
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Signs every mechanic in once.
pub async fn login_mechanics(base: &str, count: usize) -> anyhow::Result<Vec<Mechanic>> {
    let api = ApiClient::new(base)?;
    let mut mechanics: Vec<(usize, Mechanic)> = stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let tokens = api
                    .login(&email(i), PASSWORD)
                    .await
                    .with_context(|| format!("logging in {}", email(i)))?;
                anyhow::Ok((
                    i,
                    Mechanic {
                        id: tokens.user.id,
                        token: tokens.access_token,
                    },
                ))
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    mechanics.sort_by_key(|(i, _)| *i);
    Ok(mechanics.into_iter().map(|(_, m)| m).collect())
}

/// Raw HTTP for the customer side, which the API client does not cover (the identity cookie).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: reqwest::Client,
}

pub fn intake_body(n: usize) -> Value {
    json!({
        "name": format!("Bench Driver {n}"),
        "email": format!("driver-{n}@example.com"),
        "phone": "+1 555 010 2030",
        "vehicle": { "year": 2018, "make": "Honda", "model": "Civic", "vin": "1HGCM82633A004352", "mileage": 84000 },
        "concern": "Grinding noise from the front when braking at low speed",
        "plan": "trial"
    })
}

impl Http {
    pub fn new(base: &str) -> anyhow::Result<Http> {
        Ok(Http {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                // Before the server's 30 s idle close (see crates/client's ApiClient).
                .pool_idle_timeout(std::time::Duration::from_secs(20))
                .build()?,
        })
    }

    /// A new customer and their pending session; `cookie` files it for an existing customer.
    pub async fn intake(
        &self,
        n: usize,
        cookie: Option<&str>,
    ) -> anyhow::Result<(Session, Uuid, String)> {
        let mut request = self
            .client
            .post(format!("{}/api/intake", self.base))
            .json(&intake_body(n));
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("wl_customer={cookie}"));
        }
        let response = request.send().await?;
        if response.status() != StatusCode::CREATED {
            bail!(
                "intake answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let set = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("wl_customer="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string());
        let body: IntakeResponse = response.json().await?;
        let cookie = match (set, cookie) {
            (Some(c), _) => c,
            (None, Some(c)) => c.to_string(),
            (None, None) => bail!("intake set no identity cookie"),
        };
        Ok((body.session, body.user.id, cookie))
    }

    /// Trades the identity cookie for an access token.
    pub async fn customer_token(&self, cookie: &str) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/api/auth/token", self.base))
            .header("cookie", format!("wl_customer={cookie}"))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("token exchange answered {}", response.status());
        }
        Ok(response.json::<AccessToken>().await?.access_token)
    }

    /// Signs the waiver, which offers the request to mechanics.
    pub async fn sign_waiver(&self, token: &str, session: Uuid) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("{}/api/sessions/{session}/waiver", self.base))
            .bearer_auth(token)
            .json(&json!({"signed_name": "Bench Driver", "agree": true}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "waiver answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// A customer with an offered (waiver signed, not accepted) request.
pub async fn offered_request(http: &Http, n: usize) -> anyhow::Result<(Customer, Uuid)> {
    let (session, id, cookie) = http.intake(n, None).await?;
    let token = http.customer_token(&cookie).await?;
    http.sign_waiver(&token, session.id).await?;
    Ok((Customer { id, token }, session.id))
}

/// Makes sessions `from..to`, each accepted by mechanic `n % mechanics`.
pub async fn add_pairs(
    http: &Http,
    mechanics: &[Mechanic],
    from: usize,
    to: usize,
) -> anyhow::Result<Vec<Pair>> {
    let mechanics = Arc::new(mechanics.to_vec());
    let mut pairs: Vec<Pair> = stream::iter(from..to)
        .map(|n| {
            let http = http.clone();
            let mechanics = mechanics.clone();
            async move {
                let (customer, session) = offered_request(&http, n).await?;
                let m = n % mechanics.len();
                ApiClient::new(&http.base)?
                    .with_token(mechanics[m].token.clone())
                    .accept(session)
                    .await
                    .context("accepting a fresh request")?;
                anyhow::Ok(Pair {
                    session,
                    customer,
                    mechanic: m,
                })
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    pairs.sort_by_key(|p| p.session);
    Ok(pairs)
}
