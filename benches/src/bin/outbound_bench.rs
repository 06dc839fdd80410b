//! Outbound calls per second through a workflow `http_request` node, with
//! the connection pool keeping connections alive (`[outbound]` defaults)
//! against a connection per call (`idle_timeout = "0s"`, the behaviour
//! before the pool), in alternating rounds in one run.
//!
//! The server is another process (`bare`, hyper answering `ok`), so this
//! process is only the client: `CONCURRENCY` tasks each run the node in a
//! loop for `SECS` seconds per round on a multi-threaded runtime. Printed:
//! calls/s per round and mode, the median per mode, their ratio, and the
//! connections the pool opened.
//!
//! usage: `outbound_bench PORT [--secs S] [--rounds N] [--concurrency C]`
//! (defaults 3, 3, 8); `bare 127.0.0.1:PORT` must be running.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kailash_benches::runtime_workflows::principal;
use kailash_core::outbound::{ConnectionPool, PoolConfig};
use kailash_runtime::RunContext;
use kailash_runtime::node::{NodeContext, NodeType};
use kailash_runtime::outbound::{HttpRequestType, IntegrationSpec, Integrations};
use kailash_tenancy::model::{Tenant, TenantSpec};
use serde_json::json;

struct Args {
    port: u16,
    secs: f64,
    rounds: usize,
    concurrency: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let port = args
        .next()
        .ok_or("usage: outbound_bench PORT [--secs S] [--rounds N] [--concurrency C]")?
        .parse()
        .map_err(|_| "PORT must be a port number")?;
    let mut out = Args {
        port,
        secs: 3.0,
        rounds: 3,
        concurrency: 8,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: bad value {value:?}");
        match flag.as_str() {
            "--secs" => out.secs = value.parse().map_err(|_| bad())?,
            "--rounds" => out.rounds = value.parse().map_err(|_| bad())?,
            "--concurrency" => out.concurrency = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(out)
}

/// Calls per second of `concurrency` loops over `secs`; the pool's opened
/// connections.
async fn round(args: &Args, pool: &ConnectionPool) -> Result<(f64, u64), String> {
    let specs: Vec<IntegrationSpec> = serde_json::from_value(json!([{
        "name": "svc",
        "base_urls": [format!("http://127.0.0.1:{}", args.port)],
        "allow_private": true,
    }]))
    .map_err(|e| e.to_string())?;
    let integrations = Integrations::build_with(&specs, |_| None, None)
        .map_err(|e| e.to_string())?
        .with_pool(pool);
    let node = Arc::new(
        HttpRequestType::new(integrations)
            .build(&json!({"integration": "svc", "method": "GET", "path": "/"}))
            .map_err(|e| e.to_string())?,
    );
    let spec: TenantSpec = serde_json::from_value(json!({
        "id": "acme",
        "allowed_integrations": ["svc"],
    }))
    .map_err(|e| e.to_string())?;
    let tenant = Arc::new(Tenant::try_from(spec).map_err(|e| e.to_string())?);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let opened_before = pool.stats().opened;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (node, stop, calls) = (node.clone(), stop.clone(), calls.clone());
            let tenant = tenant.clone();
            tokio::spawn(async move {
                let run =
                    RunContext::new("wf-bench", tenant, principal()).map_err(|e| e.to_string())?;
                while !stop.load(Ordering::Relaxed) {
                    let ctx = NodeContext {
                        run: &run,
                        node_id: "n",
                        input_bytes: 0,
                        budget_remaining: u64::MAX,
                    };
                    let out = node
                        .run(&ctx, serde_json::Map::new())
                        .await
                        .map_err(|e| e.to_string())?;
                    if out["status"] != json!(200) {
                        return Err(format!("status {}", out["status"]));
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = calls.load(Ordering::Relaxed) as f64 / elapsed;
    Ok((rate, pool.stats().opened - opened_before))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (mut pooled, mut fresh) = (Vec::new(), Vec::new());
        for r in 1..=args.rounds {
            // A new pool per round and mode: no round starts warm.
            let keep = ConnectionPool::new(PoolConfig::default());
            let (rate, opened) = round(&args, &keep).await?;
            println!("round {r} pooled: {rate:.0} calls/s, {opened} connections");
            pooled.push(rate);
            let none = ConnectionPool::new(PoolConfig::default().idle_timeout(Duration::ZERO));
            let (rate, opened) = round(&args, &none).await?;
            println!("round {r} connection per call: {rate:.0} calls/s, {opened} connections");
            fresh.push(rate);
        }
        let (p, f) = (median(pooled), median(fresh));
        println!(
            "median pooled {p:.0} calls/s, connection per call {f:.0} calls/s, ratio {:.2} (concurrency {}, {} s rounds)",
            p / f,
            args.concurrency,
            args.secs
        );
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
