// One scenario for Go's database/sql drivers (Debian's lib/pq and pgx v4, GOPATH mode),
// run straight against PostgreSQL and through pgshard, on one shard and on two:
// parameters and common types, a prepared statement reused across transactions, commit,
// rollback, an error then going on, and several clients at once, each answer checked
// against its own parameter and every acknowledged write counted. (COPY goes through
// driver-specific APIs outside database/sql; the Python and Java scenarios cover it.)
//
//	go run go_clients.go lib/pq|pgx|pgx-nocache TABLE
//
// Connection settings come from the PG* environment variables. Prints "acknowledged N"
// and "ok"; exits 1 with what differed otherwise.
package main

import (
	"database/sql"
	"fmt"
	"os"
	"sync"

	_ "github.com/jackc/pgx/v4/stdlib"
	_ "github.com/lib/pq"
)

const (
	clients = 6
	rounds  = 40
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func expect(label string, got, wanted interface{}) {
	if fmt.Sprint(got) != fmt.Sprint(wanted) {
		fail("%s: got %v, wanted %v", label, got, wanted)
	}
}

func main() {
	driver, table := os.Args[1], os.Args[2]
	name, dsn := "postgres", ""
	switch driver {
	case "lib/pq":
	case "pgx":
		name = "pgx"
	case "pgx-nocache":
		// Without a statement cache pgx prepares every query unnamed and binds it in
		// the next round trip, as lib/pq does.
		name, dsn = "pgx", "statement_cache_capacity=0"
	default:
		fail("unknown driver %s", driver)
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		fail("open: %v", err)
	}
	db.SetMaxOpenConns(clients)
	must := func(what string, err error) {
		if err != nil {
			fail("%s: %v", what, err)
		}
	}
	_, err = db.Exec("DROP TABLE IF EXISTS " + table)
	must("drop", err)
	_, err = db.Exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, owner text, qty int, price numeric, flag bool, raw bytea)")
	must("create", err)
	insert := "INSERT INTO " + table + " (id, owner, qty, price, flag, raw) VALUES ($1, $2, $3, $4, $5, $6)"
	write := func(q interface {
		Exec(string, ...interface{}) (sql.Result, error)
	}, id int64) {
		res, err := q.Exec(insert, id, "ada", 7, "12.50", true, []byte{0, 1, 254})
		must("insert", err)
		n, err := res.RowsAffected()
		must("rows affected", err)
		expect("rows affected", n, 1)
	}

	// Parameters and types, read back by key.
	write(db, 1)
	var owner string
	var qty int
	var price string
	var flag bool
	var raw []byte
	must("select by key", db.QueryRow("SELECT owner, qty, price, flag, raw FROM "+table+" WHERE id = $1", 1).Scan(&owner, &qty, &price, &flag, &raw))
	expect("types", fmt.Sprint(owner, qty, price, flag, raw), fmt.Sprint("ada", 7, "12.50", true, []byte{0, 1, 254}))

	// A prepared statement reused across transactions.
	next, err := db.Prepare("SELECT $1::bigint + 1")
	must("prepare", err)
	for i := 0; i < 5; i++ {
		tx, err := db.Begin()
		must("begin", err)
		var got int64
		must("prepared", tx.Stmt(next).QueryRow(i).Scan(&got))
		expect("prepared", got, i+1)
		must("commit", tx.Commit())
	}

	// Commit, rollback.
	tx, err := db.Begin()
	must("begin", err)
	write(tx, 2)
	must("commit", tx.Commit())
	tx, err = db.Begin()
	must("begin", err)
	write(tx, 3)
	must("rollback", tx.Rollback())
	var kept int
	must("count", db.QueryRow("SELECT count(*) FROM "+table+" WHERE id IN (2, 3)").Scan(&kept))
	expect("commit and rollback", kept, 1)

	// An error, then going on, in and out of a transaction.
	if _, err := db.Exec("SELECT 1 / 0"); err == nil {
		fail("division by zero succeeded")
	}
	tx, err = db.Begin()
	must("begin", err)
	if _, err := tx.Exec("SELECT 1 / 0"); err == nil {
		fail("division by zero succeeded in a transaction")
	}
	must("rollback", tx.Rollback())
	var echo string
	must("after an error", db.QueryRow("SELECT $1::text", "on").Scan(&echo))
	expect("after an error", echo, "on")

	// Several clients at once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	acknowledged := 0
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				tag := fmt.Sprintf("c%d-%d", c, r)
				var got string
				err := db.QueryRow("SELECT $1::text", tag).Scan(&got)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("client %d: %v", c, err))
				} else if got != tag {
					errs = append(errs, fmt.Sprintf("client %d asked %q, got %q", c, tag, got))
				}
				mu.Unlock()
				res, err := db.Exec(insert, int64(1000+c*rounds+r), "ada", 7, "12.50", true, []byte{0})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("client %d: %v", c, err))
				} else if n, _ := res.RowsAffected(); n == 1 {
					acknowledged++
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if len(errs) > 0 {
		if len(errs) > 5 {
			errs = errs[:5]
		}
		fail("%v", errs)
	}
	fmt.Printf("acknowledged %d\n", acknowledged)
	fmt.Println("ok")
}
