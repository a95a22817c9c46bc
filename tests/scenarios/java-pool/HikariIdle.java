// A JDBC pool left idle, as a service between two bursts of traffic leaves it: HikariCP opens N
// connections to PostgreSQL, each runs one query and goes back to the pool, and then nothing
// happens. PostgreSQL ends idle sessions (idle_session_timeout): it sends an error message and
// its FIN. HikariCP looks at a connection only when it lends it (or at maxLifetime), so the
// connections sit in CLOSE-WAIT with the server's goodbye unread.
//
//   java -cp HikariCP.jar:postgresql.jar:slf4j-api.jar:CLASSES HikariIdle READY JDBC_URL N
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.sql.Connection;
import java.sql.Statement;

public class HikariIdle {
    public static void main(String[] args) throws Exception {
        String ready = args[0];
        int n = Integer.parseInt(args[2]);
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(args[1]);
        config.setUsername("postgres");
        config.setMinimumIdle(n);
        config.setMaximumPoolSize(n);
        HikariDataSource pool = new HikariDataSource(config);
        Connection[] held = new Connection[n];
        for (int i = 0; i < n; i++) {
            held[i] = pool.getConnection();
            try (Statement s = held[i].createStatement()) {
                s.execute("select 1");
            }
        }
        for (Connection c : held) {
            c.close(); // back to the pool, still open
        }
        String pid = Long.toString(ProcessHandle.current().pid());
        Path tmp = Paths.get(ready + ".tmp");
        Files.write(tmp, ("{\"pid\": " + pid + ", \"n\": " + n + "}").getBytes(StandardCharsets.UTF_8));
        Files.move(tmp, Paths.get(ready), StandardCopyOption.ATOMIC_MOVE);
        Thread.sleep(Long.MAX_VALUE);
    }
}
