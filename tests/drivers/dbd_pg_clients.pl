# One scenario for Perl's DBD::Pg (Debian's libdbd-pg-perl), run straight against
# PostgreSQL and through pgshard, on one shard and on two: parameters and common types,
# server-side prepared statements freed inside transactions (DBD::Pg then sends
# DEALLOCATE), commit, rollback, an error then going on, COPY in and out, and several
# clients in turn, each answer checked against its own parameter and every acknowledged
# write counted. Any warning DBD::Pg raises fails the run.
#
#   perl dbd_pg_clients.pl TABLE
#
# Connects with the PG* environment variables. Prints "acknowledged N" and "ok"; exits 1
# with what differed otherwise.
use strict;
use warnings;
use DBI;

use constant { CLIENTS => 6, ROUNDS => 40 };

$SIG{__WARN__} = sub { fail("warning: $_[0]") };

sub fail { print "FAILED: $_[0]\n"; exit 1; }
sub expect {
    my ($label, $got, $wanted) = @_;
    fail("$label: got " . ($got // 'undef') . ", wanted $wanted") unless defined $got && $got eq $wanted;
}
sub connect_db {
    my $dbh = DBI->connect("dbi:Pg:sslmode=disable", undef, undef,
        { RaiseError => 1, PrintError => 0, AutoCommit => 1, pg_server_prepare => 1 })
        or fail("connect: $DBI::errstr");
    return $dbh;
}

my $table = $ARGV[0];
my $insert_sql = "INSERT INTO $table (id, owner, qty, price, flag) VALUES (?, ?, ?, ?, ?)";
my @row = ("ada", 7, "12.50", 1);
my $dbh = connect_db();
# The DROP's notice would come as a warning.
$dbh->do("SET client_min_messages TO warning");
$dbh->do("DROP TABLE IF EXISTS $table");
$dbh->do("CREATE TABLE $table (id bigint PRIMARY KEY, owner text, qty int, price numeric, flag bool)");

# Parameters and types, read back by key.
expect("insert", $dbh->do($insert_sql, undef, 1, @row), 1);
my @back = $dbh->selectrow_array("SELECT owner, qty, price, flag FROM $table WHERE id = ?", undef, 1);
expect("types", join("|", @back), "ada|7|12.50|1");

# Statements prepared and freed inside transactions, then commit or rollback.
for my $case ([2, 1], [3, 0]) {
    my ($id, $commit) = @$case;
    $dbh->begin_work;
    {
        my $s = $dbh->prepare($insert_sql);
        $s->execute($id, @row);
        my $next = $dbh->prepare("SELECT ?::bigint + 1");
        $next->execute($id);
        expect("prepared", ($next->fetchrow_array)[0], $id + 1);
        $next->finish;
    } # both handles are freed here: DEALLOCATE inside the transaction
    $commit ? $dbh->commit : $dbh->rollback;
}
expect("commit and rollback",
    ($dbh->selectrow_array("SELECT count(*) FROM $table WHERE id IN (2, 3)"))[0], 1);

# An error, then going on, in and out of a transaction.
for my $in_transaction (0, 1) {
    $dbh->begin_work if $in_transaction;
    eval { $dbh->do("SELECT 1 / 0"); fail("division by zero succeeded"); };
    expect("sqlstate", $dbh->state, "22012");
    $dbh->rollback if $in_transaction;
    expect("after an error", ($dbh->selectrow_array("SELECT ?::text", undef, "on"))[0], "on");
}

# COPY in and out.
$dbh->do("COPY $table (id, owner) FROM STDIN");
$dbh->pg_putcopydata("$_\tcopied $_\n") for 100 .. 119;
$dbh->pg_putcopyend;
$dbh->do("COPY $table (id, owner) TO STDOUT");
my ($line, $copied) = ("", 0);
while ($dbh->pg_getcopydata($line) >= 0) { $copied++ if $line =~ /copied/; }
expect("copy out", $copied, 20);
expect("count", ($dbh->selectrow_array("SELECT count(*) FROM $table"))[0], 22);
$dbh->disconnect;

# Several clients, interleaved round by round.
my @clients = map { connect_db() } 1 .. CLIENTS;
my $acknowledged = 0;
for my $r (0 .. ROUNDS - 1) {
    for my $n (0 .. CLIENTS - 1) {
        my $cc = $clients[$n];
        my $tag = "c$n-$r";
        expect("client ${n}'s answer", ($cc->selectrow_array("SELECT ?::text", undef, $tag))[0], $tag);
        $acknowledged++ if $cc->do($insert_sql, undef, 1000 + $n * ROUNDS + $r, @row) == 1;
    }
}
$_->disconnect for @clients;
print "acknowledged $acknowledged\nok\n";
