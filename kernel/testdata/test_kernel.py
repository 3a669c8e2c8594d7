"""Protocol tests of mmft's Go kernel (issue 14), run by kernel/jupyter_test.go.

jupyter_kernel_test's KernelTests check the standard messages with Go samples; the tests
below it check what plain GoNB gets wrong: failed cells reply "error", control requests
are answered on the control channel, output keeps UTF-8 intact, cells import mmft and
gonbui with no network, and a kernel killed outright leaves nothing behind.
"""

import os
import signal
import tempfile
import time
import unittest
from queue import Empty

import jupyter_kernel_test
from jupyter_client.manager import start_new_kernel
from jupyter_client.utils import run_sync

KERNEL = "mmft"
TIMEOUT = 120  # the first cell builds gonbui; later ones take about a second


class MmftKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL
    language_name = "go"
    file_extension = ".go"

    code_hello_world = '%%\nfmt.Println("hello, world")'
    code_stderr = '%%\nfmt.Fprintln(os.Stderr, "to stderr")'
    # A compile error: exactly one output, the error (no HTML before it).
    code_generate_error = "%%\nvar x int = \"not an int\"\n_ = x"
    code_execute_result = [
        {"code": "%%\n6 * 7", "result": "42"},
        {"code": 'a := "go"\na + "pher"', "result": '"gopher"'},
    ]
    code_display_data = [
        {"code": '%%\ngonbui.DisplayHTML("<b>bold</b>")', "mime": "text/html"},
        {"code": '%%\ngonbui.DisplayMarkdown("*md*")', "mime": "text/markdown"},
    ]
    completion_samples = [{"text": "appen", "matches": {"append"}}]
    complete_code_samples = ['%%\nfmt.Println("x")', "func f() int { return 1 }", "x := 1\n_ = x", "%%\n"]
    incomplete_code_samples = ["func f() {", "%%\nfor i := 0; i < 3; i++ {", "x := []int{\n1,", "s := `raw"]
    invalid_code_samples = ["%%\nx := )", "func f() }", "%%\nif {"]
    code_inspect_sample = "strings.Repeat"
    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "*6 * 7*"

    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, startup_timeout=60)
        # Warm the build cache so the library's 15 s limits hold.
        reply = cls.kc.execute_interactive('%%\ngonbui.DisplayHTML("")\nfmt.Print("")', timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]

    # Each cell is a Go build: on a loaded 2-core machine one can take longer than the
    # library's 15 s, so its helpers get this file's limit.
    def execute_helper(self, code, timeout=TIMEOUT, **kwargs):
        return super().execute_helper(code, timeout=timeout, **kwargs)

    def history_helper(self, execute_first, timeout=TIMEOUT, **histargs):
        return super().history_helper(execute_first, timeout=timeout, **histargs)

    def run_cell(self, code, timeout=TIMEOUT):
        """Executes code, returning the reply content and the iopub messages of the cell."""
        outputs = []
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
        kinds = [m for m in outputs if m["msg_type"] not in ("status", "execute_input")]
        return reply["content"], kinds

    def test_mmft_panic_is_error(self):
        content, outputs = self.run_cell('%%\nfmt.Println("before")\npanic("boom in a cell")')
        self.assertEqual(content["status"], "error")
        self.assertEqual(content["ename"], "panic")
        self.assertIn("boom in a cell", content["evalue"])
        tb = "\n".join(content["traceback"])
        self.assertIn("boom in a cell", tb)
        self.assertIn("]:3", tb, "the traceback names the cell's line 3")
        errors = [m for m in outputs if m["msg_type"] == "error"]
        self.assertEqual(len(errors), 1)

    def test_mmft_run_all_stops_at_error(self):
        # Two cells sent at once, as "Run All" does: the one queued behind a panic is aborted.
        first = self.kc.execute('%%\npanic("first fails")')
        second = self.kc.execute('%%\nfmt.Println("second must not run")')
        replies = {}
        while len(replies) < 2:
            reply = self.kc.get_shell_msg(timeout=TIMEOUT)
            replies[reply["parent_header"]["msg_id"]] = reply["content"]["status"]
        self.assertEqual(replies, {first: "error", second: "aborted"})
        # A cell sent after the failure runs.
        content, _ = self.run_cell('%%\nfmt.Println("runs again")')
        self.assertEqual(content["status"], "ok")

    def test_mmft_display_update_and_sync(self):
        code = ('%%\nid := gonbui.UniqueId()\ngonbui.UpdateHTML(id, "step 1")\ngonbui.UpdateHTML(id, "step 2")\n'
                'gonbui.DisplayPNG([]byte{1, 2, 3})\ngonbui.Sync()\nfmt.Println("synced")')
        content, outputs = self.run_cell(code)
        self.assertEqual(content["status"], "ok")
        kinds = [m["msg_type"] for m in outputs]
        self.assertEqual(kinds, ["display_data", "update_display_data", "display_data", "stream"])
        first, update, png = outputs[0]["content"], outputs[1]["content"], outputs[2]["content"]
        self.assertEqual(first["transient"]["display_id"], update["transient"]["display_id"])
        self.assertEqual(update["data"]["text/html"], "step 2")
        self.assertEqual(png["data"]["image/png"], "AQID")

    def inspect(self, code):
        msg_id = self.kc.inspect(code)
        reply = self.kc.get_shell_msg(timeout=TIMEOUT)
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        return reply["content"]

    def test_mmft_inspect(self):
        self.assertEqual(self.run_cell("// twice doubles.\nfunc twice(x int) int { return 2 * x }")[0]["status"], "ok")
        self.assertIn("return 2 * x", self.inspect("twice")["data"]["text/plain"])
        self.assertEqual(self.run_cell('import "github.com/mmft-go/mmft/rewards"')[0]["status"], "ok")
        doc = self.inspect("rewards.Format")
        self.assertTrue(doc["found"], doc)
        self.assertIn("func Format", doc["data"]["text/plain"])
        self.assertFalse(self.inspect("noSuchNameAnywhere")["found"])

    def test_mmft_shell_lines(self):
        content, outputs = self.run_cell('!echo from-the-shell\n%%\nfmt.Println("then go")')
        self.assertEqual(content["status"], "ok")
        text = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
        self.assertEqual(text, "from-the-shell\nthen go\n")
        content, _ = self.run_cell("!exit 3")
        self.assertEqual(content["status"], "error")
        self.assertEqual(content["ename"], "ShellError")
        self.assertIn("exit status 3", content["evalue"])

    def test_mmft_cells_know_mmft(self):
        content, outputs = self.run_cell('%%\nfmt.Println(os.Getenv("MMFT_EXECUTABLE"))')
        self.assertEqual(content["status"], "ok")
        exe = outputs[0]["content"]["text"].strip()
        self.assertEqual(os.path.basename(exe), "mmft")
        self.assertTrue(os.access(exe, os.X_OK), exe)

    def test_mmft_exit_is_error(self):
        content, _ = self.run_cell("%%\nos.Exit(1)")
        self.assertEqual(content["status"], "error")
        self.assertIn("exit status 1", content["evalue"])

    def test_mmft_compile_error_names_cell_lines(self):
        content, outputs = self.run_cell("%%\nx := 1\ny := undefinedName + x\n_ = y")
        self.assertEqual(content["status"], "error")
        self.assertEqual(content["ename"], "CompileError")
        self.assertIn(":3:", content["traceback"][0])
        self.assertIn("undefinedName", content["traceback"][0])
        self.assertEqual([m["msg_type"] for m in outputs], ["error"])

    def test_mmft_state_across_cells(self):
        self.assertEqual(self.run_cell("type point struct{ X, Y int }\nfunc (p point) Sum() int { return p.X + p.Y }")[0]["status"], "ok")
        content, outputs = self.run_cell("%%\npoint{2, 3}.Sum()")
        self.assertEqual(content["status"], "ok")
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "5")

    def interrupt_after_start(self, code):
        msg_id = self.kc.execute(code)
        deadline = time.time() + TIMEOUT
        started = False
        while time.time() < deadline and not started:
            msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and "started" in msg["content"]["text"]:
                started = True
        self.assertTrue(started)
        t0 = time.time()
        self.km.interrupt_kernel()  # interrupt_mode "message": an interrupt_request on control
        reply = self.kc.get_shell_msg(timeout=30)
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        return reply["content"], time.time() - t0

    def test_mmft_interrupt_is_error(self):
        content, took = self.interrupt_after_start('%%\nfmt.Println("started")\ntime.Sleep(time.Hour)')
        self.assertEqual(content["status"], "error")
        self.assertEqual(content["ename"], "Interrupted")
        self.assertLess(took, 10)

    def test_mmft_interrupt_ignoring_sigint(self):
        code = '%%\nsignal.Ignore(os.Interrupt)\nfmt.Println("started")\nfor {}'
        content, took = self.interrupt_after_start(code)
        self.assertEqual(content["status"], "error")
        self.assertEqual(content["ename"], "Interrupted")
        self.assertLess(took, 15)

    def control_request(self, msg_type, content=None):
        msg = self.kc.session.msg(msg_type, content or {})
        self.kc.control_channel.send(msg)
        reply = run_sync(self.kc.control_channel.get_msg)(timeout=30)
        self.assertEqual(reply["parent_header"]["msg_id"], msg["header"]["msg_id"])
        return reply

    def test_mmft_control_channel(self):
        reply = self.control_request("kernel_info_request")
        self.assertEqual(reply["msg_type"], "kernel_info_reply")
        self.assertEqual(reply["content"]["language_info"]["name"], "go")
        reply = self.control_request("interrupt_request")
        self.assertEqual(reply["msg_type"], "interrupt_reply")
        self.assertEqual(reply["content"]["status"], "ok")
        with self.assertRaises(Empty):
            self.kc.get_shell_msg(timeout=0.5)  # nothing answered on shell

    def test_mmft_utf8_intact(self):
        # 1 MiB of multi-byte characters written in odd-sized pieces, then 3 bytes that are not UTF-8.
        code = (
            '%%\nunit := []byte("é€😀")\nbuf := bytes.Repeat(unit, (1<<20)/len(unit))\n'
            "for i := 0; i < len(buf); i += 4093 {\n\tos.Stdout.Write(buf[i:min(i+4093, len(buf))])\n}\n"
            'os.Stdout.Write([]byte{0xff, \'a\', 0xfe, 0xc3})\nos.Stdout.Sync()'
        )
        content, outputs = self.run_cell(code)
        self.assertEqual(content["status"], "ok")
        text = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
        unit = "é€😀"
        n = (1 << 20) // len(unit.encode())
        self.assertEqual(text[: n * len(unit)], unit * n)
        self.assertEqual(text[n * len(unit):], "\ufffda\ufffd\ufffd")
        self.assertGreater(len([m for m in outputs if m["msg_type"] == "stream"]), 1, "output came in several chunks")

    def test_mmft_imports_offline(self):
        # The kernel runs with GOPROXY=off (set below): these resolve from mmft's go.mod.
        code = (
            'import (\n\t"github.com/mmft-go/mmft/rewards"\n\t"github.com/janpfeifer/gonb/gonbui"\n)\n'
            '%%\ngonbui.DisplayHTML("<i>ok</i>")\nrewards.Format(rewards.Input{Completion: "x"})'
        )
        content, outputs = self.run_cell(code)
        self.assertEqual(content["status"], "ok", content)
        kinds = [m["msg_type"] for m in outputs]
        self.assertIn("display_data", kinds)
        self.assertIn("execute_result", kinds)


class LifecycleTests(unittest.TestCase):
    def test_killed_kernel_leaves_nothing(self):
        tmp = tempfile.mkdtemp(prefix="mmft-kill-test-")
        km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=60, env=dict(os.environ, TMPDIR=tmp))
        try:
            self.assertTrue(os.listdir(tmp), "the kernel's folder is in TMPDIR")
            msg_id = kc.execute('%%\nfmt.Println("pid", os.Getpid())\ntime.Sleep(time.Hour)')
            pid = None
            deadline = time.time() + TIMEOUT
            while pid is None and time.time() < deadline:
                msg = kc.get_iopub_msg(timeout=TIMEOUT)
                if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                    pid = int(msg["content"]["text"].split()[1])
            self.assertIsNotNone(pid)
            os.kill(km.provisioner.process.pid, signal.SIGKILL)  # the kernel alone, outright
            deadline = time.time() + 10
            while time.time() < deadline and (os.listdir(tmp) or os.path.exists(f"/proc/{pid}")):
                time.sleep(0.1)
            self.assertEqual(os.listdir(tmp), [], "the kernel's folder is gone")
            self.assertFalse(os.path.exists(f"/proc/{pid}"), "the cell's process is gone")
        finally:
            kc.stop_channels()
            km.cleanup_resources()
            os.rmdir(tmp) if os.path.isdir(tmp) and not os.listdir(tmp) else None

    def test_sigint_interrupts_the_cell_not_the_kernel(self):
        km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=60)
        try:
            msg_id = kc.execute('%%\nfmt.Println("started")\ntime.Sleep(time.Hour)')
            deadline = time.time() + TIMEOUT
            while time.time() < deadline:
                msg = kc.get_iopub_msg(timeout=TIMEOUT)
                if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                    break
            os.kill(km.provisioner.process.pid, signal.SIGINT)
            reply = kc.get_shell_msg(timeout=30)
            self.assertEqual(reply["content"]["ename"], "Interrupted")
            km.restart_kernel()
            kc.wait_for_ready(timeout=60)
            reply = kc.execute_interactive('%%\nfmt.Println("after restart")', timeout=TIMEOUT, output_hook=lambda m: None)
            self.assertEqual(reply["content"]["status"], "ok")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)

    def test_shutdown_on_control(self):
        km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=60)
        try:
            msg = kc.session.msg("shutdown_request", {"restart": False})
            kc.control_channel.send(msg)
            reply = run_sync(kc.control_channel.get_msg)(timeout=30)
            self.assertEqual(reply["msg_type"], "shutdown_reply")
            self.assertEqual(reply["parent_header"]["msg_id"], msg["header"]["msg_id"])
            deadline = time.time() + 10
            while km.is_alive() and time.time() < deadline:
                time.sleep(0.1)
            self.assertFalse(km.is_alive(), "the kernel exits after shutdown_reply")
        finally:
            kc.stop_channels()
            km.cleanup_resources()


if __name__ == "__main__":
    os.environ["GOPROXY"] = "off"
    unittest.main(verbosity=2)
