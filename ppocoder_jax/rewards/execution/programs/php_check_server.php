
$wrapper = new class {
    public static $code = '';
    public $context;
    private $pos = 0;
    public function stream_open($path, $mode, $options, &$opened) { $this->pos = 0; return true; }
    public function stream_read($n) {
        $r = (string) substr(self::$code, $this->pos, $n);
        $this->pos += strlen($r);
        return $r;
    }
    public function stream_eof() { return $this->pos >= strlen(self::$code); }
    public function stream_stat() { return ['size' => strlen(self::$code)]; }
    public function stream_set_option($option, $arg1, $arg2) { return false; }
    public function stream_close() { throw new \Exception("\0ppocoder compiled"); }
};
$source = get_class($wrapper);
stream_wrapper_register('ppocoder', $source);

$answer = function (string $status, string $text) {
    $text = substr($text, -16384);
    $out = $status . ' ' . strlen($text) . "\n" . $text;
    while ($out !== '') {
        $n = fwrite(STDOUT, $out);
        if ($n === false || $n === 0) { exit(70); }
        $out = (string) substr($out, $n);
    }
    fflush(STDOUT);
};
$read = function (int $size) {
    $data = '';
    while (strlen($data) < $size) {
        $chunk = fread(STDIN, min(1 << 20, $size - strlen($data)));
        if ($chunk === false || $chunk === '') { exit(0); }
        $data .= $chunk;
    }
    return $data;
};

// One program in a forked child: [status, message].
$check = function (string $code, string $name, float $wall) use ($source) {
    $source::$code = $code;
    $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
    $pid = pcntl_fork();
    if ($pid === -1) { return ['RETRY', 'fork failed']; }
    if ($pid === 0) {
        fclose(STDOUT);
        fclose($pair[0]);
        pcntl_alarm(max(1, (int) ceil($wall)));
        ini_set('display_errors', '0');
        ini_set('log_errors', '0');
        $report = function (string $status, string $text) use ($pair) {
            static $sent = false;
            if ($sent) { return; }
            $sent = true;
            fwrite($pair[1], $status . "\n" . str_replace('ppocoder://', '', $text));
            fclose($pair[1]);
            pcntl_exec('/bin/true');  // a quick exit: nothing left to clean up
            exit(0);
        };
        $where = function ($file, $line) use ($name) {
            return ' in ' . $file . ' on line ' . $line
                . "\nErrors parsing " . $name;
        };
        $done = false;
        register_shutdown_function(function () use (&$done, $report, $where) {
            if ($done) { return; }
            $e = error_get_last();
            $fatal = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;
            if ($e === null || !($e['type'] & $fatal)) { return; }  // no report: RETRY
            $memory = strpos($e['message'], 'Allowed memory size') !== false
                || strpos($e['message'], 'Out of memory') !== false;
            $report($memory ? 'RETRY' : 'FAIL', 'Fatal error: ' . $e['message'] . $where($e['file'], $e['line']));
        });
        try {
            include 'ppocoder://' . $name;
            $done = true;
            $report('RETRY', 'the include returned');  // never: stream_close throws first
        } catch (\Throwable $t) {
            $done = true;
            if ($t->getMessage() === "\0ppocoder compiled" && get_class($t) === 'Exception') {
                if ($t->getPrevious() === null) { $report('OK', ''); }
                $t = $t->getPrevious();
            }
            $kind = $t instanceof \ParseError ? 'Parse error' : 'Fatal error';
            $report('FAIL', $kind . ': ' . $t->getMessage() . $where($t->getFile(), $t->getLine()));
        }
        exit(0);
    }
    fclose($pair[1]);
    $reply = stream_get_contents($pair[0]);
    fclose($pair[0]);
    pcntl_waitpid($pid, $status);
    $parts = explode("\n", (string) $reply, 2);
    if (count($parts) !== 2 || !in_array($parts[0], ['OK', 'FAIL', 'RETRY'], true)) {
        $how = pcntl_wifsignaled($status) ? 'killed by signal ' . pcntl_wtermsig($status)
            : 'exit ' . pcntl_wexitstatus($status);
        return ['RETRY', 'the checking child ended without a verdict: ' . $how];
    }
    return $parts;
};

$good = $check("<?php\nfunction f(\$a) { return \$a + 1; }\n", $argv[1], 30);
$bad = $check("<?php\nfunction f(\$a, \$a) {}\n", $argv[1], 30);
if ($good[0] !== 'OK' || $bad[0] !== 'FAIL') {
    $answer('BROKEN', 'self-test: ' . implode(' ', $good) . ' / ' . implode(' ', $bad));
    exit(1);
}
$answer('READY', PHP_VERSION);
for (;;) {
    $head = fgets(STDIN);
    if ($head === false) { exit(0); }
    $fields = explode("\t", rtrim($head, "\n"));
    [$status, $text] = $check($read((int) $fields[0]), $fields[2], (float) $fields[1]);
    $answer($status, $text);
}
