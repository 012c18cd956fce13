// Runs one parameterised statement N times in autocommit mode through the
// PostgreSQL JDBC driver; with prepareThreshold=1 the driver switches to a
// named server-side statement after the first execution.
// Usage: java -cp postgresql.jar PreparedLoop.java JDBC_URL N
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

public class PreparedLoop {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        int n = Integer.parseInt(args[1]);
        int ok = 0;
        try (Connection c = DriverManager.getConnection(url)) {
            c.setAutoCommit(true);
            try (PreparedStatement ps = c.prepareStatement("select ?::int * 3 + pg_backend_pid() * 0")) {
                for (int i = 0; i < n; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next() || rs.getInt(1) != i * 3)
                            throw new IllegalStateException("wrong result at " + i);
                    }
                    ok++;
                }
            }
        }
        System.out.println("ok " + ok);
    }
}
