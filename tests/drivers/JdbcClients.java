// One scenario for pgjdbc (Debian's libpostgresql-jdbc-java), run straight against
// PostgreSQL and through pgshard, on one shard and on two: parameters and common types, a
// prepared statement reused across transactions (server-side once prepareThreshold is
// reached), executeUpdate, commit, rollback, an error then going on, COPY in and out, and
// several clients at once, each answer checked against its own parameter and every
// acknowledged write counted.
//
//   java -cp /usr/share/java/postgresql.jar JdbcClients.java URL TABLE
//
// Prints "acknowledged N" and "ok"; exits 1 with what differed otherwise.

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.postgresql.PGConnection;

public class JdbcClients {
    static final int CLIENTS = 6;
    static final int ROUNDS = 40;

    static void fail(String what) {
        System.out.println("FAILED: " + what);
        System.exit(1);
    }

    static void expect(String label, Object got, Object wanted) {
        if (!String.valueOf(got).equals(String.valueOf(wanted))) {
            fail(label + ": got " + got + ", wanted " + wanted);
        }
    }

    static long count(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            r.next();
            return r.getLong(1);
        }
    }

    static void insert(PreparedStatement insert, long id) throws SQLException {
        insert.setLong(1, id);
        insert.setString(2, "ada");
        insert.setInt(3, 7);
        insert.setBigDecimal(4, new BigDecimal("12.50"));
        insert.setBoolean(5, true);
        expect("executeUpdate", insert.executeUpdate(), 1);
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        String table = args[1];
        String user = System.getenv("PGUSER");
        String password = System.getenv("PGPASSWORD");
        Connection c = DriverManager.getConnection(url, user, password);
        try (Statement s = c.createStatement()) {
            s.execute("DROP TABLE IF EXISTS " + table);
            s.execute("CREATE TABLE " + table
                + " (id bigint PRIMARY KEY, owner text, qty int, price numeric, flag bool)");
        }
        String insertSql = "INSERT INTO " + table
            + " (id, owner, qty, price, flag) VALUES (?, ?, ?, ?, ?)";

        // Parameters and types, read back by key.
        try (PreparedStatement insert = c.prepareStatement(insertSql)) {
            insert(insert, 1);
        }
        try (PreparedStatement byKey = c.prepareStatement(
                "SELECT owner, qty, price, flag FROM " + table + " WHERE id = ?")) {
            byKey.setLong(1, 1);
            try (ResultSet r = byKey.executeQuery()) {
                if (!r.next()) fail("row 1 missing");
                expect("text", r.getString(1), "ada");
                expect("int", r.getInt(2), 7);
                expect("numeric", r.getBigDecimal(3), new BigDecimal("12.50"));
                expect("bool", r.getBoolean(4), true);
            }
        }

        // One prepared statement over several transactions: server-side after
        // prepareThreshold uses.
        c.setAutoCommit(false);
        try (PreparedStatement next = c.prepareStatement("SELECT ?::bigint + 1")) {
            for (int i = 0; i < 8; i++) {
                next.setLong(1, i);
                try (ResultSet r = next.executeQuery()) {
                    r.next();
                    expect("prepared", r.getLong(1), i + 1);
                }
                c.commit();
            }
        }

        // Commit, rollback.
        try (PreparedStatement insert = c.prepareStatement(insertSql)) {
            insert(insert, 2);
            c.commit();
            insert(insert, 3);
            c.rollback();
        }
        expect("commit and rollback",
            count(c, "SELECT count(*) FROM " + table + " WHERE id IN (2, 3)"), 1);

        // An error, then going on, in and out of a transaction.
        for (boolean inTransaction : new boolean[] {true, false}) {
            c.setAutoCommit(!inTransaction);
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT 1 / 0");
                fail("division by zero succeeded");
            } catch (SQLException e) {
                expect("sqlstate", e.getSQLState(), "22012");
            }
            if (inTransaction) c.rollback();
            expect("after an error", count(c, "SELECT 41 + 1"), 42);
            if (inTransaction) c.commit();
        }
        c.setAutoCommit(true);

        // COPY in and out.
        StringBuilder rows = new StringBuilder();
        for (int i = 100; i < 120; i++) rows.append(i).append("\tcopied ").append(i).append('\n');
        long copiedIn = c.unwrap(PGConnection.class).getCopyAPI().copyIn(
            "COPY " + table + " (id, owner) FROM STDIN", new StringReader(rows.toString()));
        expect("copy in", copiedIn, 20);
        StringWriter out = new StringWriter();
        c.unwrap(PGConnection.class).getCopyAPI().copyOut(
            "COPY " + table + " (id, owner) TO STDOUT", out);
        long copied = out.toString().lines().filter(l -> l.contains("copied")).count();
        expect("copy out", copied, 20);
        expect("count", count(c, "SELECT count(*) FROM " + table), 22);

        // A fetch size: the rows come in parts of 3, in order, inside a transaction.
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.setFetchSize(3);
            try (ResultSet rs = st.executeQuery("SELECT id FROM " + table + " ORDER BY id")) {
                long seen = 0, previous = Long.MIN_VALUE;
                while (rs.next()) {
                    long id = rs.getLong(1);
                    if (id <= previous) throw new RuntimeException("fetch size: " + id + " after " + previous);
                    previous = id;
                    seen++;
                }
                expect("rows with a fetch size", seen, 22);
            }
        }
        c.commit();
        c.setAutoCommit(true);
        c.close();

        // Several clients at once.
        AtomicInteger acknowledged = new AtomicInteger();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int n = 0; n < CLIENTS; n++) {
            final int client = n;
            Thread t = new Thread(() -> {
                try (Connection cc = DriverManager.getConnection(url, user, password);
                     PreparedStatement echo = cc.prepareStatement("SELECT ?::text");
                     PreparedStatement insert = cc.prepareStatement(insertSql)) {
                    for (int r = 0; r < ROUNDS; r++) {
                        String tag = "c" + client + "-" + r;
                        echo.setString(1, tag);
                        try (ResultSet rs = echo.executeQuery()) {
                            rs.next();
                            if (!tag.equals(rs.getString(1))) {
                                errors.add("client " + client + " asked " + tag + ", got " + rs.getString(1));
                            }
                        }
                        insert(insert, 1000 + client * ROUNDS + r);
                        acknowledged.incrementAndGet();
                    }
                } catch (Exception e) {
                    errors.add("client " + client + ": " + e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) t.join();
        if (!errors.isEmpty()) fail(String.join("; ", errors.subList(0, Math.min(5, errors.size()))));
        System.out.println("acknowledged " + acknowledged.get());
        System.out.println("ok");
    }
}
