// A blocking Java server on a fixed thread pool, as Tomcat's or a hand-written
// ServerSocket server is: the main thread accepts, Executors.newFixedThreadPool
// workers (named pool-1-thread-N) each serve one connection, line by line.
//
//   java PoolServer READY PORT THREADS MODE [DEPENDENCY_PORT]
//
// MODE read: each worker answers "ok" to every line until the client closes
//   (idle keep-alive clients hold their worker in read()).
// MODE dependency: each worker reads one line, then asks 127.0.0.1:DEPENDENCY_PORT
//   and waits for its answer, which never comes.
// MODE timeout: like read, with a read timeout (setSoTimeout), so idle workers
//   block in poll() rather than read().
// MODE bounded: like read, but the main thread takes a permit before accept(),
//   so with every worker busy nobody accepts and the accept queue fills.
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.concurrent.*;

public class PoolServer {
    public static void main(String[] args) throws Exception {
        String ready = args[0];
        int port = Integer.parseInt(args[1]);
        int threads = Integer.parseInt(args[2]);
        String mode = args[3];
        int dependency = args.length > 4 ? Integer.parseInt(args[4]) : 0;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        Semaphore permits = new Semaphore(threads);
        ServerSocket server = new ServerSocket(port, 8);
        Path tmp = Paths.get(ready + ".tmp");
        Files.writeString(tmp, "{\"pid\": " + ProcessHandle.current().pid() + ", \"port\": " + port + "}");
        Files.move(tmp, Paths.get(ready), StandardCopyOption.ATOMIC_MOVE);
        while (true) {
            if (mode.equals("bounded")) {
                permits.acquire();
            }
            Socket client = server.accept();
            pool.submit(() -> {
                try (Socket c = client) {
                    if (mode.equals("timeout")) {
                        c.setSoTimeout(600_000);
                    }
                    serve(c, mode, dependency);
                } catch (IOException e) {
                    // the client went away
                } finally {
                    if (mode.equals("bounded")) {
                        permits.release();
                    }
                }
                return null;
            });
        }
    }

    static void serve(Socket c, String mode, int dependency) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8));
        OutputStream out = c.getOutputStream();
        String line;
        while ((line = in.readLine()) != null) {
            if (mode.equals("dependency")) {
                try (Socket db = new Socket("127.0.0.1", dependency)) {
                    db.getOutputStream().write("query\n".getBytes(StandardCharsets.UTF_8));
                    db.getInputStream().read();
                }
            }
            out.write("ok\n".getBytes(StandardCharsets.UTF_8));
        }
    }
}
