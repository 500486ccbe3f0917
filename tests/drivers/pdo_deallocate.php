<?php
// PHP PDO with server-side prepares (emulation off), several processes at once through the
// proxy: a statement freed inside a transaction runs DEALLOCATE, and the transaction must
// still commit. Prints how many commits were acknowledged, for the caller to count.
// Connection settings come from libpq's environment (PGHOST, PGPORT, ...).
$client = $argv[1];
$rounds = (int)$argv[2];
$pdo = new PDO('pgsql:', null, null, [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_EMULATE_PREPARES => false,
]);
$acked = 0;
for ($i = 0; $i < $rounds; $i++) {
    $pdo->beginTransaction();
    $insert = $pdo->prepare('INSERT INTO pdo_ledger VALUES (?, ?)');
    $insert->execute([$client, $i]);
    $insert = null; // frees the statement: DEALLOCATE inside the transaction
    $check = $pdo->prepare('SELECT count(*) FROM pdo_ledger WHERE client = ? AND n = ?');
    $check->execute([$client, $i]);
    if ((int)$check->fetchColumn() !== 1) {
        fwrite(STDERR, "client $client: its own row $i is not visible in its transaction\n");
        exit(1);
    }
    $check = null;
    if (!$pdo->commit()) {
        fwrite(STDERR, "client $client: commit $i returned false\n");
        exit(1);
    }
    $acked++;
}
echo "acknowledged $acked\n";
