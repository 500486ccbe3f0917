//! pgshard's `hash` sharding against PostgreSQL 15's own hash partitioning: generated
//! keys go into tables `PARTITION BY HASH`, and for every row the partition PostgreSQL
//! stored it in (`tableoid`) must be the shard pgshard computes for its key.

use anyhow::{bail, ensure, Context, Result};
use pgshard_router::sharding::{hash_partition, KeyType, KeyValue, ShardingFunction};
use pgshard_tests::{Cluster, User};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// Partition counts, i.e. shard counts, to compare.
const MODULI: [usize; 3] = [2, 3, 5];

/// Generated keys per type, besides the edge cases.
const KEYS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_sharding_puts_every_row_where_postgresql_hash_partitioning_does() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let client = cluster.shard(0).primary().client(&User::app()).await?;
    // A fixed seed: a failure can be reproduced key for key.
    let mut rng = StdRng::seed_from_u64(0x5eed_0005);

    let mut bigints: Vec<i64> = vec![0, 1, -1, i64::MIN, i64::MAX, 1 << 32, -(1 << 32)];
    bigints.extend([i32::MIN, i32::MAX].map(i64::from));
    bigints.extend((0..KEYS).map(|i| match i % 3 {
        0 => rng.gen::<i64>(),
        1 => rng.gen::<i32>().into(),
        _ => i as i64,
    }));
    check(&client, "bigint", KeyType::Int8, &bigints).await?;

    let mut ints: Vec<i32> = vec![0, 1, -1, i32::MIN, i32::MAX];
    ints.extend((0..KEYS).map(|_| rng.gen::<i32>()));
    check(&client, "int", KeyType::Int4, &ints).await?;

    let mut smallints: Vec<i16> = vec![0, -1, i16::MIN, i16::MAX];
    smallints.extend((0..KEYS).map(|_| rng.gen::<i16>()));
    check(&client, "smallint", KeyType::Int2, &smallints).await?;

    let mut texts: Vec<String> = ["", " ", "a", "hello world!", "Grüße, 世界! 🦀"]
        .map(String::from)
        .to_vec();
    texts.extend((0..KEYS).map(|_| text(&mut rng)));
    check(&client, "text", KeyType::Text, &texts).await?;

    let mut uuids: Vec<String> = vec![uuid([0; 16]), uuid([0xff; 16])];
    uuids.extend((0..KEYS).map(|_| uuid(rng.gen())));
    check(&client, "uuid", KeyType::Uuid, &uuids).await?;
    Ok(())
}

/// For each modulus: creates a hash-partitioned table with a `sql_type` key, inserts
/// `keys` and a NULL, and compares every row's partition with pgshard's shard.
async fn check<T>(client: &Client, sql_type: &str, key_type: KeyType, keys: &[T]) -> Result<()>
where
    T: ToSql + Sync,
{
    // Text keys go in as text[] and are cast, so uuids need no driver support.
    let array = if sql_type == "uuid" { "text" } else { sql_type };
    for modulus in MODULI {
        let table = format!("hashed_{sql_type}_{modulus}");
        let mut ddl = format!("CREATE TABLE {table} (k {sql_type}) PARTITION BY HASH (k);");
        for remainder in 0..modulus {
            ddl.push_str(&format!(
                "CREATE TABLE {table}_p{remainder} PARTITION OF {table} \
                 FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder});"
            ));
        }
        ddl.push_str(&format!("INSERT INTO {table} VALUES (NULL);"));
        client.batch_execute(&ddl).await?;
        client
            .execute(
                &format!("INSERT INTO {table} SELECT unnest($1::{array}[])::{sql_type}"),
                &[&keys],
            )
            .await
            .with_context(|| format!("inserting into {table}"))?;

        let rows = client
            .query(
                &format!("SELECT k::text, tableoid::regclass::text FROM {table}"),
                &[],
            )
            .await?;
        ensure!(
            rows.len() == keys.len() + 1,
            "{table}: {} rows read back",
            rows.len()
        );
        let mut mismatches = Vec::new();
        let mut per_partition = vec![0usize; modulus];
        for row in rows {
            let key: Option<String> = row.get(0);
            let partition: String = row.get(1);
            let Some(remainder) = partition
                .rsplit_once("_p")
                .and_then(|(_, remainder)| remainder.parse::<usize>().ok())
            else {
                bail!("unexpected partition {partition}");
            };
            per_partition[remainder] += 1;
            let value = match &key {
                Some(text) => KeyValue::from_text(key_type, text)?,
                None => KeyValue::Null,
            };
            let shard = ShardingFunction::Hash.shard_of(&value, modulus)?;
            ensure!(shard == hash_partition(&value, modulus));
            if shard != remainder {
                mismatches.push(format!("{value}: PostgreSQL {remainder}, pgshard {shard}"));
            }
        }
        ensure!(
            mismatches.is_empty(),
            "{table}: {} of {} keys on another shard than PostgreSQL's partition, e.g. {:?}",
            mismatches.len(),
            keys.len() + 1,
            &mismatches[..mismatches.len().min(5)]
        );
        // Every partition got rows, so no shard index went unchecked.
        ensure!(
            per_partition.iter().all(|&count| count > 0),
            "{table}: rows per partition {per_partition:?}"
        );
    }
    Ok(())
}

/// A string of 0 to 40 characters mixing ASCII, Latin-1, CJK and emoji, so UTF-8
/// sequences of every length fall across lookup3's 12-byte blocks.
fn text(rng: &mut StdRng) -> String {
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', ' ', '-', '_', 'é', 'ß', 'ø', '日', '本', '語', '🦀', '🐘',
    ];
    let len = rng.gen_range(0..=40);
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

/// The canonical text form of a UUID.
fn uuid(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
