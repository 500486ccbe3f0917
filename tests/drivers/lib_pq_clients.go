// Several Go lib/pq clients at once through the proxy, as an application runs them: each
// query with arguments is prepared unnamed in one round trip and bound in the next.
// Readers check every answer against what they asked; writers print how many inserts were
// acknowledged, for the caller to count against the table.
//
// Connection settings come from the environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE, PGSSLMODE), as lib/pq reads them.
package main

import (
	"database/sql"
	"fmt"
	"os"
	"sync"

	_ "github.com/lib/pq"
)

const (
	readers = 6
	writers = 2
	rounds  = 300
)

func main() {
	db, err := sql.Open("postgres", "")
	if err != nil {
		fail("open: %v", err)
	}
	db.SetMaxOpenConns(readers + writers)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS go_ledger (writer text, n int)"); err != nil {
		fail("create: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers+writers)
	acked := make([]int, writers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				asked := fmt.Sprintf("C%d-%d", r, i)
				var got string
				if err := db.QueryRow("SELECT $1::text", asked).Scan(&got); err != nil {
					errs <- fmt.Errorf("reader C%d: %v", r, err)
					return
				}
				if got != asked {
					errs <- fmt.Errorf("client C%d asked for %q, got %q", r, asked, got)
					return
				}
			}
		}(r)
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				res, err := db.Exec("INSERT INTO go_ledger VALUES ($1, $2)", fmt.Sprintf("W%d", w), i)
				if err != nil {
					errs <- fmt.Errorf("writer W%d: %v", w, err)
					return
				}
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					errs <- fmt.Errorf("writer W%d: %d rows affected (%v)", w, n, err)
					return
				}
				acked[w]++
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	failed := false
	for err := range errs {
		fmt.Fprintln(os.Stderr, err)
		failed = true
	}
	for w, n := range acked {
		fmt.Printf("acknowledged W%d %d\n", w, n)
	}
	fmt.Printf("reads %d\n", readers*rounds)
	if failed {
		os.Exit(1)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
