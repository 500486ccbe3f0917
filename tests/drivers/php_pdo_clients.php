<?php
// One scenario for PHP's PDO (Debian's php-pgsql), emulated prepares off, run straight
// against PostgreSQL and through pgshard, on one shard and on two: parameters and common
// types, prepared statements freed inside transactions (PDO then sends DEALLOCATE),
// commit, rollback, an error then going on, COPY in and out (pgsqlCopyFromArray and
// pgsqlCopyToArray, which sends COPY … TO STDIN), and several clients in turn, each answer
// checked against its own parameter and every acknowledged write counted.
//
//   php php_pdo_clients.php TABLE
//
// Connects with the PG* environment variables. Prints "acknowledged N" and "ok"; exits 1
// with what differed otherwise.

const CLIENTS = 6;
const ROUNDS = 40;

function fail($what) { echo "FAILED: $what\n"; exit(1); }
function expect($label, $got, $wanted) {
    if ($got !== $wanted) fail("$label: got " . var_export($got, true) . ", wanted " . var_export($wanted, true));
}
function connect() {
    $dsn = sprintf("pgsql:host=%s;port=%s;dbname=%s;sslmode=disable",
        getenv("PGHOST"), getenv("PGPORT"), getenv("PGDATABASE"));
    return new PDO($dsn, getenv("PGUSER"), getenv("PGPASSWORD"), [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_EMULATE_PREPARES => false,
    ]);
}

$table = $argv[1];
$insertSql = "INSERT INTO $table (id, owner, qty, price, flag) VALUES (?, ?, ?, ?, ?)";
$row = fn($id) => [$id, "ada", 7, "12.50", true];
$c = connect();
$c->exec("DROP TABLE IF EXISTS $table");
$c->exec("CREATE TABLE $table (id bigint PRIMARY KEY, owner text, qty int, price numeric, flag bool)");

// Parameters and types, read back by key.
$insert = $c->prepare($insertSql);
$insert->execute($row(1));
expect("insert", $insert->rowCount(), 1);
$back = $c->prepare("SELECT owner, qty, price, flag FROM $table WHERE id = ?");
$back->execute([1]);
expect("types", $back->fetch(PDO::FETCH_ASSOC), ["owner" => "ada", "qty" => 7, "price" => "12.50", "flag" => true]);

// Statements prepared and freed inside transactions, then commit or rollback.
foreach ([[2, true], [3, false]] as [$id, $commit]) {
    $c->beginTransaction();
    $s = $c->prepare($insertSql);
    $s->execute($row($id));
    $s = null; // PDO deallocates it here, inside the transaction.
    $next = $c->prepare("SELECT ?::bigint + 1");
    $next->execute([$id]);
    expect("prepared", (int)$next->fetchColumn(), $id + 1);
    $next = null;
    expect($commit ? "commit" : "rollback", $commit ? $c->commit() : $c->rollBack(), true);
}
expect("commit and rollback", (int)$c->query("SELECT count(*) FROM $table WHERE id IN (2, 3)")->fetchColumn(), 1);

// An error, then going on, in and out of a transaction.
foreach ([false, true] as $inTransaction) {
    if ($inTransaction) $c->beginTransaction();
    try {
        $c->query("SELECT 1 / 0");
        fail("division by zero succeeded");
    } catch (PDOException $e) {
        expect("sqlstate", $e->getCode(), "22012");
    }
    if ($inTransaction) $c->rollBack();
    $on = $c->prepare("SELECT ?::text");
    $on->execute(["on"]);
    expect("after an error", $on->fetchColumn(), "on");
}

// COPY in and out.
$lines = [];
for ($i = 100; $i < 120; $i++) $lines[] = "$i\tcopied $i";
expect("copy in", $c->pgsqlCopyFromArray($table, $lines, "\t", "\\\\N", "id, owner"), true);
$out = $c->pgsqlCopyToArray($table, "\t", "\\\\N", "id, owner");
expect("copy out", count(array_filter($out, fn($l) => str_contains($l, "copied"))), 20);
expect("count", (int)$c->query("SELECT count(*) FROM $table")->fetchColumn(), 22);
$c = null;

// Several clients, interleaved round by round (PHP runs one request at a time).
$clients = [];
for ($n = 0; $n < CLIENTS; $n++) $clients[$n] = connect();
$acknowledged = 0;
for ($r = 0; $r < ROUNDS; $r++) {
    foreach ($clients as $n => $cc) {
        $tag = "c$n-$r";
        $echo = $cc->prepare("SELECT ?::text");
        $echo->execute([$tag]);
        expect("client $n's answer", $echo->fetchColumn(), $tag);
        $ins = $cc->prepare($insertSql);
        $ins->execute($row(1000 + $n * ROUNDS + $r));
        if ($ins->rowCount() === 1) $acknowledged++;
    }
}
echo "acknowledged $acknowledged\n";
echo "ok\n";
