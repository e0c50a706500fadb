import Foundation
import LoomTestSupport
import Testing

@Suite("loom plan and loom bench project", .serialized)
struct PlanCommandTests {
    @Test("plan prints each product's cut and the barriers; bench project prints both schedules per worker count")
    func planAndProject() throws {
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        let plan = try loom(["plan", config, "--workers", "4", "--set", "training.schedule=widest"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("Step plan for 4 workers, batch 4 (widest)") && plan.stdout.contains("barrier"))
        expectOneLineError(try loom(["plan", config, "--workers", "5"]), ["--workers 5", "batch size 4"])
        let project = try loom([
            "bench", "project", config, "--workers", "2,4", "--steps", "2", "--stages", "--json", dir + "/p.json",
        ])
        #expect(project.status == 0, "\(project.stderr)")
        #expect(project.stdout.contains("PROJECTION (an estimate)"))
        let rows = project.stdout.split(separator: "\n").filter {
            $0.hasPrefix("      2  ") || $0.hasPrefix("      4  ")
        }
        #expect(rows.count == 4, "\(project.stdout)")  // rows and auto for each worker count
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/p.json")))
        #expect((json as? [Any])?.count == 4)
        expectOneLineError(try loom(["bench", "project", config, "--workers", "1,x"]), ["--workers 1,x"])
    }

    @Test("one binary carries both kernel builds: LOOM_KERNELS=avx2 runs the 8-wide ones, reproducibly")
    func kernelDispatch() throws {
        let forced = try Running(["topology"], environment: ["LOOM_KERNELS": "avx2"]).finish()
        #expect(forced.stdout.contains("Kernels: AVX2 (8-wide vectors"), "\(forced.stdout)")
        let dir = temporaryFolder("loom-cli")
        writeGoodIDX(dir)
        let config = idxConfig(dir)
        let a = try Running(["train", config, "--quiet"], environment: ["LOOM_KERNELS": "avx2"]).finish()
        let b = try Running(["train", config, "--quiet", "--workers", "1"], environment: ["LOOM_KERNELS": "avx2"])
            .finish()
        #expect(a.status == 0 && digest(a) != nil && digest(a) == digest(b))
    }
}
