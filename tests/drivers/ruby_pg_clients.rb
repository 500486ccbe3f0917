# One scenario for ruby-pg (Debian's), run straight against PostgreSQL and through pgshard,
# on one shard and on two: parameters and common types, a statement prepared once and
# executed across transactions, the unnamed one over several round trips, commit, rollback, an error then going
# on, COPY in and out, and several clients at once, each answer checked against its own
# parameter and every acknowledged write counted.
#
#   ruby ruby_pg_clients.rb TABLE
#
# Connects with the PG* environment variables. Prints "acknowledged N" and "ok"; exits 1
# with what differed otherwise.
require "pg"

CLIENTS = 6
ROUNDS = 40

def fail(what)
  puts "FAILED: #{what}"
  exit 1
end

def expect(label, got, wanted)
  fail("#{label}: got #{got.inspect}, wanted #{wanted.inspect}") unless got == wanted
end

table = ARGV.fetch(0)
insert = "INSERT INTO #{table} (id, owner, qty, price, flag) VALUES ($1, $2, $3, $4, $5)"
row = ->(id) { [id, "ada", 7, "12.50", "t"] }
c = PG.connect
c.exec("DROP TABLE IF EXISTS #{table}")
c.exec("CREATE TABLE #{table} (id bigint PRIMARY KEY, owner text, qty int, price numeric, flag bool)")

# Parameters and types, read back by key.
expect("insert", c.exec_params(insert, row.(1)).cmd_tuples, 1)
back = c.exec_params("SELECT owner, qty, price, flag FROM #{table} WHERE id = $1", [1]).first
expect("types", back, { "owner" => "ada", "qty" => "7", "price" => "12.50", "flag" => "t" })

# A named statement prepared once, executed across transactions.
c.prepare("next", "SELECT $1::bigint + 1")
5.times do |i|
  c.transaction do |t|
    expect("prepared", t.exec_prepared("next", [i]).getvalue(0, 0), (i + 1).to_s)
  end
end
# The unnamed statement lasts until the next simple query or unnamed Parse, each
# execution a round trip of its own.
c.prepare("", "SELECT $1::text || '!'")
3.times { |i| expect("unnamed", c.exec_prepared("", ["u#{i}"]).getvalue(0, 0), "u#{i}!") }

# Commit, rollback.
c.transaction { |t| t.exec_params(insert, row.(2)) }
begin
  c.transaction do |t|
    t.exec_params(insert, row.(3))
    raise PG::Error, "roll back"
  end
rescue PG::Error
end
expect("commit and rollback",
       c.exec("SELECT count(*) FROM #{table} WHERE id IN (2, 3)").getvalue(0, 0), "1")

# An error, then going on, in and out of a transaction.
[false, true].each do |in_transaction|
  c.exec("BEGIN") if in_transaction
  begin
    c.exec("SELECT 1 / 0")
    fail("division by zero succeeded")
  rescue PG::DivisionByZero
  end
  c.exec("ROLLBACK") if in_transaction
  expect("after an error", c.exec_params("SELECT $1::text", ["on"]).getvalue(0, 0), "on")
end

# COPY in and out.
c.copy_data("COPY #{table} (id, owner) FROM STDIN") do
  (100...120).each { |i| c.put_copy_data("#{i}\tcopied #{i}\n") }
end
out = +""
c.copy_data("COPY #{table} (id, owner) TO STDOUT") do
  while (line = c.get_copy_data)
    out << line
  end
end
expect("copy out", out.lines.count { |l| l.include?("copied") }, 20)
expect("count", c.exec("SELECT count(*) FROM #{table}").getvalue(0, 0), "22")
c.close

# Several clients at once.
acknowledged = 0
errors = []
lock = Mutex.new
threads = (0...CLIENTS).map do |n|
  Thread.new do
    cc = PG.connect
    ROUNDS.times do |r|
      tag = "c#{n}-#{r}"
      got = cc.exec_params("SELECT $1::text", [tag]).getvalue(0, 0)
      lock.synchronize { errors << "client #{n} asked #{tag}, got #{got}" } unless got == tag
      ok = cc.exec_params(insert, row.(1000 + n * ROUNDS + r)).cmd_tuples == 1
      lock.synchronize { acknowledged += 1 } if ok
    end
    cc.close
  rescue StandardError => e
    lock.synchronize { errors << "client #{n}: #{e.message}" }
  end
end
threads.each(&:join)
fail(errors.first(5).join("; ")) unless errors.empty?
puts "acknowledged #{acknowledged}"
puts "ok"
