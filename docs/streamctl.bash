_streamctl() {
    local IFS=$' \t\n'
    local args cur prev cmd opts arg
    args=("${COMP_WORDS[@]}")
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    opts="-h --help --version"

    args=("${args[@]:1}")
    for arg in "${args[@]}"; do
        case "$arg" in
            aliyun)
                cmd="aliyun"
                opts="$opts -h --help"
                args=("${args[@]:1}")
                for arg in "${args[@]}"; do
                    case "$arg" in
                        create-live-pull-to-push)
                            cmd="$cmd create-live-pull-to-push"
                            opts="$opts -h --help --region --task-name --region-id --start-time --end-time --source-type --source-protocol --source-urls --dst-url --repeat-number --file-index --offset --callback-url --retry-interval --retry-count --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        delete-live-pull-to-push)
                            cmd="$cmd delete-live-pull-to-push"
                            opts="$opts -h --help --region --task-id --region-id --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        delete-live-stream-block)
                            cmd="$cmd delete-live-stream-block"
                            opts="$opts -h --help --domain-name --app-name --stream-name --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        describe-live-domain-configs)
                            cmd="$cmd describe-live-domain-configs"
                            opts="$opts -h --help --domain-name --function-names --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-pull-to-push)
                            cmd="$cmd describe-live-pull-to-push"
                            opts="$opts -h --help --region --task-id --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-pull-to-push-list)
                            cmd="$cmd describe-live-pull-to-push-list"
                            opts="$opts -h --help --region --dst-url --task-id --task-name --page-number --page-size --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-streams-block-list)
                            cmd="$cmd describe-live-streams-block-list"
                            opts="$opts -h --help --domain-name --page-number --page-size --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-streams-control-history)
                            cmd="$cmd describe-live-streams-control-history"
                            opts="$opts -h --help --domain-name --app-name --start-time --end-time --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-streams-online-list)
                            cmd="$cmd describe-live-streams-online-list"
                            opts="$opts -h --help --domain-name --app-name --stream-name --page-number --page-size --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-streams-publish-list)
                            cmd="$cmd describe-live-streams-publish-list"
                            opts="$opts -h --help --domain-name --app-name --stream-name --start-time --end-time --order-by --query-type --stream-type --page-number --page-size --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-live-user-domains)
                            cmd="$cmd describe-live-user-domains"
                            opts="$opts -h --help --live-domain-type --domain-name --domain-search-type --domain-status --region-name --page-number --page-size --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-stream-location-block)
                            cmd="$cmd describe-stream-location-block"
                            opts="$opts -h --help --domain-name --app-name --stream-name --block-type --page-number --page-size --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        forbid-live-stream)
                            cmd="$cmd forbid-live-stream"
                            opts="$opts -h --help --domain-name --app-name --stream-name --live-stream-type --region-id --oneshot --resume-time --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        forbid-live-streams)
                            cmd="$cmd forbid-live-streams"
                            opts="$opts -h --help --domain-name --app-name --from --live-stream-type --region-id --oneshot --resume-time --places-limit --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-forbid"
                            break
                            ;;
                        restart-live-pull-to-push)
                            cmd="$cmd restart-live-pull-to-push"
                            opts="$opts -h --help --region --task-id --region-id --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        resume-live-stream)
                            cmd="$cmd resume-live-stream"
                            opts="$opts -h --help --domain-name --app-name --stream-name --live-stream-type --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        resume-live-streams)
                            cmd="$cmd resume-live-streams"
                            opts="$opts -h --help --domain-name --app-name --from --live-stream-type --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-resume"
                            break
                            ;;
                        set-live-stream-block)
                            cmd="$cmd set-live-stream-block"
                            opts="$opts -h --help --domain-name --app-name --stream-name --block-type --location-list --release-time --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        stop-live-pull-to-push)
                            cmd="$cmd stop-live-pull-to-push"
                            opts="$opts -h --help --region --task-id --region-id --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        update-live-pull-to-push)
                            cmd="$cmd update-live-pull-to-push"
                            opts="$opts -h --help --region --task-id --region-id --start-time --end-time --source-urls --repeat-number --file-index --offset --callback-url --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        call)
                            cmd="$cmd call"
                            opts="$opts -h --help --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-forbid --max-resume"
                            break
                            ;;
                        methods)
                            cmd="$cmd methods"
                            opts="$opts -h --help -o --output"
                            break
                            ;;
                        reconcile)
                            cmd="$cmd reconcile"
                            opts="$opts -h --help --from --remove-extra --allow-empty --domain-name --resume-time --places-limit --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-forbid --max-resume"
                            break
                            ;;
                        whoami)
                            cmd="$cmd whoami"
                            opts="$opts -h --help --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --access-key-id --access-key-secret --security-token --profile --signature-version --no-credentials-cache --account-id -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --sts-endpoint"
                            break
                            ;;
                    esac
                done
                break
                ;;
            zego)
                cmd="zego"
                opts="$opts -h --help"
                args=("${args[@]:1}")
                for arg in "${args[@]}"; do
                    case "$arg" in
                        close-room)
                            cmd="$cmd close-room"
                            opts="$opts -h --help --room-id --custom-reason --room-close-callback --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        del-forbid-stream-rule)
                            cmd="$cmd del-forbid-stream-rule"
                            opts="$opts -h --help --room-id --stream-id --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        describe-forbid-stream-rules)
                            cmd="$cmd describe-forbid-stream-rules"
                            opts="$opts -h --help --room-id --stream-ids --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        describe-rtc-stream-state)
                            cmd="$cmd describe-rtc-stream-state"
                            opts="$opts -h --help --stream-id --sequence --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout"
                            break
                            ;;
                        forbid-cdn-live-stream)
                            cmd="$cmd forbid-cdn-live-stream"
                            opts="$opts -h --help --stream-id --resume-time --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        forbid-rtc-stream)
                            cmd="$cmd forbid-rtc-stream"
                            opts="$opts -h --help --stream-id --sequence --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        forbid-rtc-streams)
                            cmd="$cmd forbid-rtc-streams"
                            opts="$opts -h --help --from --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-forbid"
                            break
                            ;;
                        kickout-user)
                            cmd="$cmd kickout-user"
                            opts="$opts -h --help --room-id --user-ids --custom-reason --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        resume-cdn-live-stream)
                            cmd="$cmd resume-cdn-live-stream"
                            opts="$opts -h --help --stream-id --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        resume-rtc-stream)
                            cmd="$cmd resume-rtc-stream"
                            opts="$opts -h --help --stream-id --sequence --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        resume-rtc-streams)
                            cmd="$cmd resume-rtc-streams"
                            opts="$opts -h --help --from --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-resume"
                            break
                            ;;
                        set-forbid-stream-rule)
                            cmd="$cmd set-forbid-stream-rule"
                            opts="$opts -h --help --room-id --stream-id --disable-audio --disable-video --effective-time --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log"
                            break
                            ;;
                        call)
                            cmd="$cmd call"
                            opts="$opts -h --help --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-forbid --max-resume"
                            break
                            ;;
                        methods)
                            cmd="$cmd methods"
                            opts="$opts -h --help -o --output"
                            break
                            ;;
                        reconcile)
                            cmd="$cmd reconcile"
                            opts="$opts -h --help --from --remove-extra --allow-empty --state --cdn-resume-time --endpoint --ca-file --proxy --timeout --concurrency --rate --cap --deadline --redis --decision-file --decisions-shared --emulator --emulator-dir --app-id --server-secret --profile --is-test -o --output --dry-run --no-progress --debug --metrics-file --trace-timeout --audit-log --no-audit-log --yes --max-forbid --max-resume"
                            break
                            ;;
                        issue-token)
                            cmd="$cmd issue-token"
                            opts="$opts -h --help --app-id --profile --is-test --user-id --room-id --login --publish --stream-id --ttl -o --output"
                            break
                            ;;
                        read-token)
                            cmd="$cmd read-token"
                            opts="$opts -h --help --app-id --profile --is-test --legacy-cbc -o --output"
                            break
                            ;;
                    esac
                done
                break
                ;;
            configure)
                cmd="configure"
                opts="$opts -h --help --profile"
                break
                ;;
            emulator)
                cmd="emulator"
                opts="$opts -h --help --dir --config --aliyun-port --zego-port --aliyun-tls-port --zego-tls-port --imds-port --imds-listen"
                break
                ;;
            man)
                cmd="man"
                opts="$opts -h --help --roff --install --prefix"
                break
                ;;
            audit)
                cmd="audit"
                opts="$opts -h --help --run --stream --since -o --output"
                break
                ;;
            completion)
                cmd="completion"
                opts="$opts -h --help"
                break
                ;;
        esac
    done

    case "$cmd" in
        '')
            COMPREPLY=($(compgen -W "aliyun zego configure emulator man audit completion" -- "$cur"))
            ;;
        'aliyun')
            COMPREPLY=($(compgen -W "create-live-pull-to-push delete-live-pull-to-push delete-live-stream-block describe-live-domain-configs describe-live-pull-to-push describe-live-pull-to-push-list describe-live-streams-block-list describe-live-streams-control-history describe-live-streams-online-list describe-live-streams-publish-list describe-live-user-domains describe-stream-location-block forbid-live-stream forbid-live-streams restart-live-pull-to-push resume-live-stream resume-live-streams set-live-stream-block stop-live-pull-to-push update-live-pull-to-push call methods reconcile whoami" -- "$cur"))
            ;;
        'aliyun create-live-pull-to-push')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --task-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --start-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --end-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --source-type)
                    COMPREPLY=($(compgen -W "live vod url" -- "$cur"))
                    return 0
                    ;;
                --source-protocol)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --source-urls)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --dst-url)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --repeat-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --file-index)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --offset)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --callback-url)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --retry-interval)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --retry-count)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun delete-live-pull-to-push')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --task-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun delete-live-stream-block')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-domain-configs')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --function-names)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-pull-to-push')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --task-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-pull-to-push-list')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --dst-url)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --task-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --task-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-size)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-streams-block-list')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-size)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-streams-control-history')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --start-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --end-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-streams-online-list')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-size)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-streams-publish-list')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --start-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --end-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --order-by)
                    COMPREPLY=($(compgen -W "publish_time_asc publish_time_desc stream_name_asc stream_name_desc" -- "$cur"))
                    return 0
                    ;;
                --query-type)
                    COMPREPLY=($(compgen -W "fuzzy strict" -- "$cur"))
                    return 0
                    ;;
                --stream-type)
                    COMPREPLY=($(compgen -W "all trans" -- "$cur"))
                    return 0
                    ;;
                --page-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-size)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-live-user-domains')
            case "$prev" in
                --live-domain-type)
                    COMPREPLY=($(compgen -W "liveVideo liveEdge" -- "$cur"))
                    return 0
                    ;;
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --domain-search-type)
                    COMPREPLY=($(compgen -W "fuzzy_match pre_match suf_match full_match" -- "$cur"))
                    return 0
                    ;;
                --domain-status)
                    COMPREPLY=($(compgen -W "online offline configuring" -- "$cur"))
                    return 0
                    ;;
                --region-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-size)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun describe-stream-location-block')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --block-type)
                    COMPREPLY=($(compgen -W "blacklist whitelist" -- "$cur"))
                    return 0
                    ;;
                --page-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --page-size)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun forbid-live-stream')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --live-stream-type)
                    COMPREPLY=($(compgen -W "publisher" -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --oneshot)
                    COMPREPLY=($(compgen -W "yes no" -- "$cur"))
                    return 0
                    ;;
                --resume-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun forbid-live-streams')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --live-stream-type)
                    COMPREPLY=($(compgen -W "publisher" -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --oneshot)
                    COMPREPLY=($(compgen -W "yes no" -- "$cur"))
                    return 0
                    ;;
                --resume-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --places-limit)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-forbid)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun restart-live-pull-to-push')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --task-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun resume-live-stream')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --live-stream-type)
                    COMPREPLY=($(compgen -W "publisher" -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun resume-live-streams')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --from)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --live-stream-type)
                    COMPREPLY=($(compgen -W "publisher" -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-resume)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun set-live-stream-block')
            case "$prev" in
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --block-type)
                    COMPREPLY=($(compgen -W "blacklist whitelist" -- "$cur"))
                    return 0
                    ;;
                --location-list)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --release-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun stop-live-pull-to-push')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --task-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun update-live-pull-to-push')
            case "$prev" in
                --region)
                    COMPREPLY=($(compgen -W "ap-southeast-1 ap-southeast-5 cn-beijing cn-shanghai cn-shenzhen" -- "$cur"))
                    return 0
                    ;;
                --task-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --region-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --start-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --end-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --source-urls)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --repeat-number)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --file-index)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --offset)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --callback-url)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun call')
            case "$prev" in
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-forbid)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-resume)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun methods')
            case "$prev" in
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun reconcile')
            case "$prev" in
                --from)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --domain-name)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --resume-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --places-limit)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-forbid)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-resume)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'aliyun whoami')
            case "$prev" in
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --access-key-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --security-token)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --signature-version)
                    COMPREPLY=($(compgen -W "v3 v1" -- "$cur"))
                    return 0
                    ;;
                --account-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --sts-endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego')
            COMPREPLY=($(compgen -W "close-room del-forbid-stream-rule describe-forbid-stream-rules describe-rtc-stream-state forbid-cdn-live-stream forbid-rtc-stream forbid-rtc-streams kickout-user resume-cdn-live-stream resume-rtc-stream resume-rtc-streams set-forbid-stream-rule call methods reconcile issue-token read-token" -- "$cur"))
            ;;
        'zego close-room')
            case "$prev" in
                --room-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --custom-reason)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --room-close-callback)
                    COMPREPLY=($(compgen -W "true false" -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego del-forbid-stream-rule')
            case "$prev" in
                --room-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego describe-forbid-stream-rules')
            case "$prev" in
                --room-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-ids)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego describe-rtc-stream-state')
            case "$prev" in
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --sequence)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego forbid-cdn-live-stream')
            case "$prev" in
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --resume-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego forbid-rtc-stream')
            case "$prev" in
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --sequence)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego forbid-rtc-streams')
            case "$prev" in
                --from)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-forbid)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego kickout-user')
            case "$prev" in
                --room-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --user-ids)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --custom-reason)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego resume-cdn-live-stream')
            case "$prev" in
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego resume-rtc-stream')
            case "$prev" in
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --sequence)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego resume-rtc-streams')
            case "$prev" in
                --from)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-resume)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego set-forbid-stream-rule')
            case "$prev" in
                --room-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --disable-audio)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --disable-video)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --effective-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego call')
            case "$prev" in
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-forbid)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-resume)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego methods')
            case "$prev" in
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego reconcile')
            case "$prev" in
                --from)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --state)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cdn-resume-time)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --endpoint)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ca-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --proxy)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --rate)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --cap)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --deadline)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --redis)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --decision-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --emulator-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --server-secret)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --trace-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --audit-log)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-forbid)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --max-resume)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego issue-token')
            case "$prev" in
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --user-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --room-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --ttl)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'zego read-token')
            case "$prev" in
                --app-id)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'configure')
            case "$prev" in
                --profile)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'emulator')
            case "$prev" in
                --dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --config)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --aliyun-port)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --zego-port)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --aliyun-tls-port)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --zego-tls-port)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --imds-port)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --imds-listen)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'man')
            case "$prev" in
                --prefix)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'audit')
            case "$prev" in
                --run)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --stream)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --since)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                -o|--output)
                    COMPREPLY=($(compgen -W "table json" -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
    esac

    if [[ "$cur" = -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}

complete -F _streamctl -o bashdefault -o default streamctl
